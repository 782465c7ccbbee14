/* fixture.h - one real worker in-process, for the tests of rooms and the
 * registry (test_registry.c, test_room.c): a project in a temporary
 * directory (partykit.json + party scripts), its config, SQLite storage in
 * <project>/.luaparty, a uv loop and a worker (index 0 of 1) on it, set up
 * and torn down in the order src/main.c uses. Plus fakes for what a room
 * talks to: an exchange (an HTTP request waiting for its answer) and a
 * connection (conn_ops) that record what the room did to them. */
#ifndef LP_UNIT_FIXTURE_H
#define LP_UNIT_FIXTURE_H

#include "unit.h"

#include "config.h"
#include "conn.h"
#include "http.h"
#include "room.h"
#include "storage.h"
#include "worker.h"

#include <uv.h>

typedef struct fixture {
    const char *dir;        /* the project (unit_tmpdir) */
    uv_loop_t loop;
    config cfg;
    storage *store;
    storage *peek;          /* a second connection to the same database */
    worker w;
    worker *all[1];         /* w.all */
    bool started;           /* fx_start ran (fx_stop tears down) */
} fixture;

/* A fresh project directory holding partykit.json = json (log output off). */
void fx_project(fixture *f, const char *label, const char *json);
/* Writes the project file rel (e.g. "parties/main.lua"). */
void fx_file(fixture *f, const char *rel, const char *text);
/* Loads the project and starts the worker; the registry's services
 * (registry_start) only if services is true. f->cfg may be changed after
 * fx_load and before fx_start (e.g. idle_timeout_ms). */
void fx_load(fixture *f);
void fx_start(fixture *f, bool services);
/* Teardown as main.c's stop_worker/close_loop/free_slots, then removes the
 * project directory. */
void fx_stop(fixture *f);

const party *fx_party(fixture *f, const char *name);

/* Runs the loop (without blocking) until done(arg) is true or ms
 * milliseconds passed; returns done(arg). done may be NULL: runs for ms. */
bool fx_run(fixture *f, bool (*done)(void *arg), void *arg, uint64_t ms);

/* A stored string value as the codec writes it ('s', varint length, bytes):
 * returns the string (static buffer), or NULL if the key is absent. */
const char *fx_stored_string(storage *s, const char *party_name, const char *room_id, const char *key);

/* Every answer, send and close the fakes see gets the next number of this
 * sequence (1, 2, ...): the order of outputs across exchanges and conns. */
extern int fx_seq;

/* ---- a fake exchange ---- */
typedef struct fx_exchange {
    exchange ex;
    fixture *f;
    int responded, failed;  /* calls of respond / fail */
    int status;
    char body[512];
    size_t body_len;
    char error[512];        /* fail's message */
    int seq;                /* fx_seq of the answer */
    const char *want_header; /* if set: that response header's value goes in header */
    char header[128];
    bool batch_open;        /* storage_dirty(f->store) when the answer came */
    const char *peek_key;   /* if set: read this key of peek_party/peek_room ... */
    const char *peek_party, *peek_room;
    char peeked[128];       /* ... from a second storage connection when the answer came */
    bool peek_found;
} fx_exchange;

void fx_exchange_init(fx_exchange *x, fixture *f);
bool fx_answered(void *x); /* for fx_run */

/* A request (method, target, optional body); the room takes it. */
http_request *fx_request(const char *method, const char *target, const char *body);

/* ---- a fake connection ---- */
#define FX_MAX_SENT 16
typedef struct fx_conn {
    lp_conn conn;
    fixture *f;
    int nsent;
    char sent[FX_MAX_SENT][256];
    size_t sent_len[FX_MAX_SENT];
    int sent_opcode[FX_MAX_SENT];
    bool sent_batch_open[FX_MAX_SENT]; /* storage_dirty when it was sent */
    int sent_seq[FX_MAX_SENT];
    const char *peek_key;   /* if set: whether the second storage connection ... */
    const char *peek_party, *peek_room;
    bool sent_peek_found[FX_MAX_SENT]; /* ... saw this key when each message was sent */
    int closes;
    int close_seq;
    int close_code;
    char close_reason[128];
    bool destroyed;
} fx_conn;

void fx_conn_init(fx_conn *c, fixture *f, const char *id, const char *uri);
/* The transport is gone: room_disconnect, then drops the transport's own
 * reference (as server.c does). */
void fx_conn_gone(fx_conn *c, int code);
/* The i-th message sent, as a string (NUL-terminated copy). */
const char *fx_sent(const fx_conn *c, int i);

#endif
