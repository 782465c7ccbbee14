/* storage.h - durable per-room key/value storage and alarms on embedded
 * SQLite.
 *
 * One database per project (<persist>/luaparty.db, WAL). A room's writes go
 * into an open batch (one SQLite transaction) as the callback makes them,
 * so its reads see them; storage_commit ends the batch at the callback
 * boundary (room.c) and its callback says when the writes are durable. Only
 * one room step runs at a time on a worker, so a batch never mixes rooms.
 * In cluster mode (cluster_storage.c) SQLite is the node's copy and Redis
 * the record: every batch is also written down as a list of ops (a
 * journal), sent to Redis after the local commit, and its callback says
 * when Redis has it; rooms do not change. */
#ifndef LP_STORAGE_H
#define LP_STORAGE_H

#include "buf.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct storage storage;

/* Opens (creating) <dir>/luaparty.db. sync_full adds an fsync per commit.
 * Returns NULL with *err (caller frees) naming the file if it cannot be
 * used; we never start empty over data we cannot read. */
storage *storage_open(const char *dir, bool sync_full, char **err);
/* Another connection to the database storage_open opened (one per worker):
 * no integrity check, no schema. */
storage *storage_open_again(const char *dir, bool sync_full, char **err);
void storage_close(storage *s);
const char *storage_path(const storage *s);
/* Deletes every key, alarm and version of every room (`luaparty test`: each test
 * starts on empty storage). Returns 0, or -1 with *err (caller frees). */
int storage_wipe(storage *s, char **err);

/* Functions returning int: >= 0 on success, -1 on error with *err set to a
 * message owned by the storage (valid until the next call). */
int storage_get(storage *s, const char *party, const char *room, const char *key, size_t klen, buf *out,
                const char **err); /* 1 found, 0 absent */
int storage_put(storage *s, const char *party, const char *room, const char *key, size_t klen, const void *val,
                size_t vlen, const char **err);
int storage_delete(storage *s, const char *party, const char *room, const char *key, size_t klen,
                   const char **err); /* 1 existed, 0 absent */
int storage_delete_all(storage *s, const char *party, const char *room, const char **err);

typedef struct storage_range {
    const char *start, *start_after, *end, *prefix; /* NULL: no bound */
    size_t start_len, start_after_len, end_len, prefix_len;
    bool reverse;
    long limit;                                    /* < 0: no limit */
} storage_range;
typedef void (*storage_row)(void *ud, const char *key, size_t klen, const char *val, size_t vlen);
int storage_list(storage *s, const char *party, const char *room, const storage_range *range, storage_row cb,
                 void *ud, const char **err);

/* Nested atomic groups inside the batch (storage:transaction). */
int storage_savepoint(storage *s, const char **err);
int storage_release(storage *s, const char **err);
int storage_rollback_to(storage *s, const char **err);

/* True while a batch is open. */
bool storage_dirty(const storage *s);
/* status: 0 durable; -1 failed (rolled back, or refused by the record);
 * STORAGE_FENCED: the record refused it because this node no longer owns
 * the room (cluster mode). */
#define STORAGE_FENCED (-2)
typedef void (*storage_done)(void *ud, int status, const char *error);
/* Ends the open batch; cb(0) once durable, cb(-1, msg) if it was rolled
 * back (cb may be NULL). */
void storage_commit(storage *s, storage_done cb, void *ud);
/* Throws the open batch away (a room failed half-way). */
void storage_abort(storage *s);

/* Alarms: one per room, epoch milliseconds, written in the batch; retries
 * counts failed onAlarm runs (kept in storage so a retry survives an
 * unloaded room or a restart). */
int storage_set_alarm(storage *s, const char *party, const char *room, int64_t at, int retries, const char **err);
int storage_delete_alarm(storage *s, const char *party, const char *room, const char **err);
/* 1 and *at set if the room has an alarm, 0 if not. */
int storage_get_alarm(storage *s, const char *party, const char *room, int64_t *at, int *retries,
                      const char **err);
/* The earliest alarm of all rooms: 1 and *at, or 0 if none. */
int storage_next_alarm(storage *s, int64_t *at);
typedef void (*storage_alarm_row)(void *ud, const char *party, const char *room, int64_t at, int retries);
/* Calls cb for alarms due at or before now (at most limit). */
int storage_due_alarms(storage *s, int64_t now, int limit, storage_alarm_row cb, void *ud);

/* ---- a store of record behind the local one (cluster storage) ---- */

/* The ops of one ended batch, for its store of record: one room's writes
 * in the order made (transaction rollbacks already taken out). */
typedef struct storage_batch {
    char *party, *room;
    buf ops; /* per op: its letter, then each argument as a u32 length + bytes */
} storage_batch;

/* Op letters, with their arguments. */
enum {
    STORAGE_OP_PUT = 'P',       /* key, value */
    STORAGE_OP_DELETE = 'D',    /* key */
    STORAGE_OP_DELETE_ALL = 'X',/* (the alarm too) */
    STORAGE_OP_ALARM = 'A',     /* at, retries (decimal) */
    STORAGE_OP_NO_ALARM = 'a',
};

/* Reads the op at *pos (advancing it): 0 at the end, else its letter, with
 * up to 2 arguments in args/lens and their count in *nargs. */
int storage_batch_next(const storage_batch *b, size_t *pos, const char *args[2], size_t lens[2], int *nargs);
void storage_batch_free(storage_batch *b);

typedef struct storage_record {
    /* Before a batch with ops commits locally: may add writes to it (the
     * room's version); returns -1 with *err to refuse the commit. */
    int (*prepare)(void *ud, storage *s, const storage_batch *b, const char **err);
    /* After the local commit: takes b's contents and calls done once the
     * record has them (or refused them). */
    void (*send)(void *ud, storage_batch *b, storage_done done, void *done_ud);
    void *ud;
} storage_record;

/* Every batch with writes of a room (a non-empty room id) goes to rec too. */
void storage_set_record(storage *s, const storage_record *rec);
/* While paused, writes are local only (loading a room's data from the record). */
void storage_journal_pause(storage *s, bool paused);

/* The version of a room's local data as the record knows it: the fence the
 * node holds the room with now, and (vfence, seq) of the data. 1 found, 0
 * not (the local copy is not known to be current), -1 error. */
int storage_version_get(storage *s, const char *party, const char *room, uint64_t *fence, uint64_t *vfence,
                        uint64_t *seq, const char **err);
/* In the open batch (one is begun if none is open). */
int storage_version_put(storage *s, const char *party, const char *room, uint64_t fence, uint64_t vfence,
                        uint64_t seq, const char **err);
int storage_version_forget(storage *s, const char *party, const char *room, const char **err);

/* What the database is for: single-node storage (the record itself) or a
 * cluster node's copy. Refuses (-1, *err, caller frees) to use one as the
 * other: a node's copy may be stale, and single-node data is not in Redis
 * until `luaparty storage export` puts it there. An empty database takes
 * the role asked for. */
int storage_check_role(storage *s, bool cluster_copy, char **err);

/* Calls cb for every room with data or an alarm (for export). */
typedef void (*storage_room_row)(void *ud, const char *party, const char *room);
int storage_each_room(storage *s, storage_room_row cb, void *ud, const char **err);

#endif
