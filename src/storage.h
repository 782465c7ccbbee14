/* storage.h - durable per-room key/value storage on embedded SQLite.
 *
 * One database per project (<persist>/luaparty.db, WAL). Rooms buffer their
 * writes (room.c) and hand a whole batch to storage_commit, whose callback
 * says when it is durable; a later backend (Redis, a remote node) can call
 * it asynchronously without any change in rooms. */
#ifndef LP_STORAGE_H
#define LP_STORAGE_H

#include "buf.h"
#include "util.h"

typedef struct storage storage;

/* Opens (creating) <dir>/luaparty.db. Returns NULL with *err (caller frees)
 * naming the file if it cannot be opened or is not a luaparty database. */
storage *storage_open(const char *dir, char **err);
void storage_close(storage *s);

/* 1 found (value in out), 0 absent, -1 error (*err: static message). */
int storage_get(storage *s, const char *party, const char *room, const char *key, size_t klen, buf *out,
                const char **err);

typedef void (*storage_done)(void *ud, int status, const char *error);
/* Writes the batch (key -> buf* value, or NULL to delete) in one transaction. */
void storage_commit(storage *s, const char *party, const char *room, const dict *writes, storage_done cb,
                    void *ud);
/* Frees a batch value (buf* or NULL). */
void storage_value_free(void *v);

#endif
