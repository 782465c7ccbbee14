/* fixture.c - see fixture.h. */
#include "fixture.h"

#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "sandbox.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

void fx_project(fixture *f, const char *label, const char *json)
{
    memset(f, 0, sizeof *f);
    log_set_level(LOG_OFF); /* load errors and party errors are logged: keep one line per test */
    f->dir = unit_tmpdir(label);
    unit_write_file(f->dir, "partykit.json", json, strlen(json));
}

void fx_file(fixture *f, const char *rel, const char *text) { unit_write_file(f->dir, rel, text, strlen(text)); }

void fx_load(fixture *f)
{
    config_defaults(&f->cfg);
    f->cfg.dir = xstrdup(f->dir);
    char *err = NULL;
    ASSERT_MSG(config_load(&f->cfg, &err) == 0, "config_load: %s", err ? err : "?");
}

void fx_start(fixture *f, bool services)
{
    char *err = NULL;
    f->store = storage_open(f->cfg.persist_dir, f->cfg.storage_sync_full, &err);
    ASSERT_MSG(f->store != NULL, "storage_open: %s", err ? err : "?");
    f->peek = storage_open_again(f->cfg.persist_dir, false, &err);
    ASSERT_MSG(f->peek != NULL, "storage_open_again: %s", err ? err : "?");
    ASSERT_EQ(uv_loop_init(&f->loop), 0);
    sandbox_prepare(); /* once: compiles the embedded runtime */
    worker_init(&f->w, &f->loop, &f->cfg, f->store);
    f->w.index = 0;
    f->w.nworkers = 1;
    f->all[0] = &f->w;
    f->w.all = f->all;
    lp_metrics_here = &f->w.stats;
    if (services) registry_start(&f->w);
    f->started = true;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) uv_close(h, NULL);
}

void fx_stop(fixture *f)
{
    if (f->started) {
        worker_settle(&f->w);
        registry_close(&f->w);
        worker_close(&f->w);
        uv_walk(&f->loop, close_walk, NULL);
        uv_run(&f->loop, UV_RUN_DEFAULT);
        ASSERT_EQ(uv_loop_close(&f->loop), 0);
        storage_close(f->peek);
        storage_close(f->store);
        worker_free(&f->w);
        f->started = false;
    }
    config_free(&f->cfg);
    sandbox_free_compiled();
    thread_cache_drain();
    unit_remove_tree(f->dir);
}

const party *fx_party(fixture *f, const char *name)
{
    const party *p = config_party(&f->cfg, name, strlen(name));
    ASSERT_MSG(p != NULL, "no party \"%s\" in the project", name);
    return p;
}

bool fx_run(fixture *f, bool (*done)(void *arg), void *arg, uint64_t ms)
{
    uint64_t end = uv_hrtime() + ms * 1000000ull;
    for (;;) {
        if (done && done(arg)) return true;
        if (uv_hrtime() >= end) return done ? done(arg) : true;
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (done && done(arg)) return true;
        usleep(1000);
    }
}

const char *fx_stored_string(storage *s, const char *party_name, const char *room_id, const char *key)
{
    static char out[256];
    buf b;
    buf_init(&b);
    const char *err = NULL;
    int rc = storage_get(s, party_name, room_id, key, strlen(key), &b, &err);
    ASSERT_MSG(rc >= 0, "storage_get: %s", err ? err : "?");
    if (rc == 0) {
        buf_free(&b);
        return NULL;
    }
    /* 's', a one-byte varint length (the tests store short strings), bytes */
    ASSERT_MSG(b.len >= 2 && b.data[0] == 's' && (unsigned char)b.data[1] < 0x80 &&
                   (size_t)(unsigned char)b.data[1] == b.len - 2 && b.len - 2 < sizeof out,
               "stored %s is not a short string: %s", key, unit_repr(b.data, b.len));
    memcpy(out, b.data + 2, b.len - 2);
    out[b.len - 2] = 0;
    buf_free(&b);
    return out;
}

/* ---- exchange ---- */

int fx_seq;

static void record_store(fx_exchange *x)
{
    x->seq = ++fx_seq;
    x->batch_open = storage_dirty(x->f->store);
    if (x->peek_key) {
        const char *v = fx_stored_string(x->f->peek, x->peek_party, x->peek_room, x->peek_key);
        x->peek_found = v != NULL;
        snprintf(x->peeked, sizeof x->peeked, "%s", v ? v : "");
    }
}

static void x_respond(exchange *ex, http_response *res)
{
    fx_exchange *x = (fx_exchange *)ex;
    x->responded++;
    x->status = res->status;
    x->body_len = res->body.len < sizeof x->body - 1 ? res->body.len : sizeof x->body - 1;
    if (x->body_len) memcpy(x->body, res->body.data, x->body_len);
    x->body[x->body_len] = 0;
    const char *h = x->want_header ? http_headers_get(&res->headers, x->want_header) : NULL;
    snprintf(x->header, sizeof x->header, "%s", h ? h : "");
    http_response_free(res);
    record_store(x);
}

static void x_fail(exchange *ex, const char *err)
{
    fx_exchange *x = (fx_exchange *)ex;
    x->failed++;
    snprintf(x->error, sizeof x->error, "%s", err ? err : "");
    record_store(x);
}

void fx_exchange_init(fx_exchange *x, fixture *f)
{
    memset(x, 0, sizeof *x);
    x->ex.respond = x_respond;
    x->ex.fail = x_fail;
    x->f = f;
}

bool fx_answered(void *arg)
{
    fx_exchange *x = arg;
    return x->responded + x->failed > 0;
}

http_request *fx_request(const char *method, const char *target, const char *body)
{
    http_request *req = http_request_new(method, target);
    if (body) buf_append(&req->body, body, strlen(body));
    return req;
}

/* ---- connection ---- */

static void c_send(lp_conn *conn, chunk *msg)
{
    fx_conn *c = (fx_conn *)conn;
    ASSERT_MSG(c->nsent < FX_MAX_SENT, "more than %d messages sent", FX_MAX_SENT);
    size_t n = chunk_payload_len(msg);
    ASSERT(n < sizeof c->sent[0]);
    memcpy(c->sent[c->nsent], chunk_payload(msg), n);
    c->sent[c->nsent][n] = 0;
    c->sent_len[c->nsent] = n;
    c->sent_opcode[c->nsent] = msg->opcode;
    c->sent_batch_open[c->nsent] = storage_dirty(c->f->store);
    c->sent_seq[c->nsent] = ++fx_seq;
    if (c->peek_key)
        c->sent_peek_found[c->nsent] = fx_stored_string(c->f->peek, c->peek_party, c->peek_room, c->peek_key) != NULL;
    c->nsent++;
}

static void c_close(lp_conn *conn, int code, const char *reason, size_t len)
{
    fx_conn *c = (fx_conn *)conn;
    c->closes++;
    c->close_seq = ++fx_seq;
    c->close_code = code;
    if (len >= sizeof c->close_reason) len = sizeof c->close_reason - 1;
    memcpy(c->close_reason, reason, len);
    c->close_reason[len] = 0;
}

static void c_destroy(lp_conn *conn)
{
    fx_conn *c = (fx_conn *)conn;
    ASSERT(!c->destroyed);
    conn_cleanup(conn);
    c->destroyed = true; /* the fx_conn itself belongs to the test */
}

static const conn_ops fx_conn_ops = {c_send, c_close, c_destroy};

void fx_conn_init(fx_conn *c, fixture *f, const char *id, const char *uri)
{
    memset(c, 0, sizeof *c);
    conn_init(&c->conn, &fx_conn_ops, id, uri);
    c->f = f;
}

void fx_conn_gone(fx_conn *c, int code)
{
    room_disconnect(&c->conn, code, NULL);
    conn_unref(&c->conn); /* the transport's own reference */
}

const char *fx_sent(const fx_conn *c, int i)
{
    ASSERT_MSG(i < c->nsent, "message %d was not sent (%d sent)", i, c->nsent);
    return c->sent[i];
}
