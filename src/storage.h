/* storage.h - durable per-room key/value storage and alarms on embedded
 * SQLite.
 *
 * One database per project (<persist>/luaparty.db, WAL). A room's writes go
 * into an open batch (one SQLite transaction) as the callback makes them,
 * so its reads see them; storage_commit ends the batch at the callback
 * boundary (room.c) and its callback says when the writes are durable. Only
 * one room step runs at a time on a worker, so a batch never mixes rooms.
 * A later backend (Redis, a remote node) keeps this interface and calls the
 * commit callback asynchronously; rooms do not change. */
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
/* Deletes every key and alarm of every room (`luaparty test`: each test
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

#endif
