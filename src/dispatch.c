/* dispatch.c - routing and delivery: a parsed request walks from here to
 * its room (see dispatch.h).
 *
 * Order for an HTTP request: the dev cron trigger, static files, CORS
 * preflights, the main party's onFetch for non-party URLs, route errors,
 * the party's onBeforeRequest, then the room's onRequest. For an upgrade:
 * the main party's onSocket for non-party URLs, route errors, handshake
 * errors, onBeforeConnect, then the room's onConnect. Static hooks run in
 * the party's lobby (room ""); their verdict comes back to on_decision. */
#include "dispatch.h"
#include "calls.h"
#include "cron.h"
#include "fetch.h"
#include "placement.h"
#include "metrics.h"
#include "registry.h"
#include "room.h"
#include "router.h"
#include "static.h"
#include "ws.h"

#include <stdlib.h>
#include <string.h>

/* ---- answering the peer ---- */

/* A plain-text response, with one more header if value is set. */
static http_response *text_response(int status, const char *body, const char *name, const char *value)
{
    http_response *res = http_response_new(status, "text/plain;charset=UTF-8", body, strlen(body));
    if (value) http_headers_add(&res->headers, name, strlen(name), value, strlen(value));
    return res;
}

/* A plain-text answer, with one more header if value is set. */
static void reply_with(http_peer *p, int status, const char *body, bool close, const char *name, const char *value)
{
    http_response *res = text_response(status, body, name, value);
    p->ops->respond(p, res, !close, false, NULL, NULL, 0);
    http_response_free(res);
}

static void reply(http_peer *p, int status, const char *body, bool close)
{
    reply_with(p, status, body, close, NULL, NULL);
}

/* The room could not start: a 503 to retry if this node released it
 * meanwhile (cluster mode: placed again, it starts), else a 500. */
static void reply_not_started(http_peer *p, const char *err, bool close)
{
    if (strcmp(err, REGISTRY_ROOM_MOVED) == 0) reply_with(p, 503, err, close, "retry-after", "1");
    else reply(p, 500, p->w->cfg->dev ? err : "Internal Server Error", close);
}

static bool is_head(const http_request *req) { return strcmp(req->method, "HEAD") == 0; }

/* luaparty.cors: party responses may be read by pages of that origin. */
static void add_cors(const config *cfg, http_response *res)
{
    if (!cfg->cors_origin || http_headers_get(&res->headers, "access-control-allow-origin")) return;
    http_headers_add(&res->headers, "access-control-allow-origin", 27, cfg->cors_origin, strlen(cfg->cors_origin));
    if (strcmp(cfg->cors_origin, "*") != 0) http_headers_add(&res->headers, "vary", 4, "Origin", 6);
}

/* Cluster mode: who answered (clients, tests and operators can see it). */
static void add_node(http_response *res)
{
    const char *me = placement_node_id();
    if (me) http_headers_add(&res->headers, "x-luaparty-node", 15, me, strlen(me));
}

/* A CORS preflight for a party URL, answered without waking the room. */
static bool preflight(http_peer *p, const http_request *req)
{
    const config *cfg = p->w->cfg;
    if (!cfg->cors_origin || strcmp(req->method, "OPTIONS") != 0 ||
        !http_headers_get(&req->headers, "access-control-request-method"))
        return false;
    http_response *res = http_response_new(204, NULL, NULL, 0);
    add_cors(cfg, res);
    const char *want = http_headers_get(&req->headers, "access-control-request-headers");
    const char *methods = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";
    http_headers_add(&res->headers, "access-control-allow-methods", 28, methods, strlen(methods));
    if (want && http_header_value_ok(want, strlen(want)))
        http_headers_add(&res->headers, "access-control-allow-headers", 28, want, strlen(want));
    http_headers_add(&res->headers, "access-control-max-age", 22, "86400", 5);
    p->ops->respond(p, res, req->keep_alive, false, req->method, req->target, uv_hrtime());
    http_response_free(res);
    return true;
}

/* Answers a request that did not reach a room; returns true if it did. */
static bool route_error(http_peer *p, const route *rt, bool close)
{
    char msg[200];
    switch (rt->kind) {
    case ROUTE_ROOM: return false;
    case ROUTE_NOT_FOUND: reply(p, 404, "Not found", close); return true;
    case ROUTE_UNKNOWN_PARTY:
        snprintf(msg, sizeof msg, "Party %s not found", rt->name);
        reply(p, 404, msg, close);
        return true;
    case ROUTE_ID_TOO_LONG: reply(p, 414, "Room id too long (256 bytes at most)", close); return true;
    }
    return true;
}

/* The live room, or NULL once the peer has its 500 (dev: with the reason). */
static room *resolve(http_peer *p, const party *pt, const char *id, bool close)
{
    char *err = NULL;
    room *r = registry_resolve(p->w, pt, id, &err);
    if (!r) {
        reply_not_started(p, err, close);
        free(err);
    }
    return r;
}

/* ---- onRequest ---- */

typedef struct peer_exchange {
    exchange ex;
    awaiting a;
    bool head;
    bool keep_alive;
    uint64_t start;
    char *method, *target;  /* only for the request log */
} peer_exchange;

static void exchange_free(peer_exchange *pe)
{
    free(pe->method);
    free(pe->target);
    thread_cache_put(pe, sizeof *pe);
}

static void exchange_respond(exchange *ex, http_response *res)
{
    peer_exchange *pe = (peer_exchange *)ex;
    http_peer *p = pe->a.peer;
    if (p) {
        p->waiting = NULL;
        add_cors(p->w->cfg, res);
        add_node(res);
        p->ops->respond(p, res, pe->keep_alive, pe->head, pe->method, pe->target, pe->start);
        p->ops->resume(p);
    }
    http_response_free(res);
    exchange_free(pe);
}

static void exchange_fail(exchange *ex, const char *err)
{
    peer_exchange *pe = (peer_exchange *)ex;
    http_peer *p = pe->a.peer; /* the registry logged why */
    if (p) {
        p->waiting = NULL;
        reply_not_started(p, err, !pe->keep_alive);
        p->ops->resume(p);
    }
    exchange_free(pe);
}

/* Hands an HTTP request to its room (onRequest) on this node, on whichever
 * worker. */
static void deliver_request_here(http_peer *p, http_request *req, const route *rt)
{
    p->ops->hold(p); /* the room takes its time */
    peer_exchange *pe = thread_cache_get(sizeof *pe); /* one per request: no calloc + free */
    pe->ex.respond = exchange_respond;
    pe->ex.fail = exchange_fail;
    pe->a.peer = p;
    pe->head = is_head(req);
    pe->keep_alive = req->keep_alive;
    pe->start = uv_hrtime();
    if (dispatch_logs_requests(p->w->cfg)) {
        pe->method = xstrdup(req->method);
        pe->target = xstrdup(req->target);
    }
    p->waiting = &pe->a;
    registry_request(p->w, rt->party, rt->room, req, &pe->ex);
}

/* ---- onConnect ---- */

/* Completes a WebSocket upgrade on this node: 101, then the room's
 * onConnect. Takes req. */
static void deliver_upgrade_here(http_peer *p, http_request *req, const route *rt)
{
    const config *cfg = p->w->cfg;
    room *r = resolve(p, rt->party, rt->room, true);
    if (!r) goto done;
    if (room_full(r, cfg->max_room_connections)) {
        reply(p, 503, "room is full", true);
        goto done;
    }
    char id[512];
    if (!query_param(req->target, "_pk", id, sizeof id) || !id[0]) uuid_v4(id);
    lp_conn *c = p->ops->accept_ws(p, req, id, placement_node_id());
    if (!c) goto done;
    if (cfg->dev) log_info("connect %s/%s id=%s", rt->party->name, rt->room, id);
    METRIC_ADD(connections_opened, 1);
    room_connect(r, c, req); /* takes req */
    p->ops->resume(p);       /* frames that came with the upgrade */
    return;
done:
    http_request_free(req);
}

/* --log-level debug: one line per message (apart, so the message path
 * stays a tail call with no stack buffer) */
__attribute__((noinline)) static void log_message(const lp_conn *c, int opcode, const void *data, size_t len)
{
    char text[200];
    log_msg(LOG_DEBUG, "message %s/%s id=%s %s %zu bytes%s%s", c->room->party->name, c->room->id, c->id,
            opcode == WS_TEXT ? "text" : "binary", len, opcode == WS_TEXT ? ": " : "",
            opcode == WS_TEXT ? log_preview(text, sizeof text, data, len) : "");
}

void dispatch_ws_message(lp_conn *c, int opcode, const void *data, size_t len)
{
    if (log_get_level() <= LOG_DEBUG) log_message(c, opcode, data, len);
    room_message_bytes(c, opcode, data, len);
}

void dispatch_ws_closed(lp_conn *c, int code, const char *reason, const char *error)
{
    if (c->room->owner->cfg->dev) {
        const char *why = reason ? reason : error;
        char text[200];
        log_info("disconnect %s/%s id=%s code=%d%s%s%s", c->room->party->name, c->room->id, c->id, code,
                 why ? " reason=\"" : "", why ? log_preview(text, sizeof text, why, strlen(why)) : "", why ? "\"" : "");
    }
    room_disconnect(c, code, error);
}

/* ---- cluster mode: the room may live on another node ---- */

/* Hop-by-hop headers (RFC 9110 7.6.1) and our own: never passed on. */
static bool hop_header(const char *name)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection", "te", "trailer",
                                        "transfer-encoding", "upgrade", "content-length"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i])) return true;
    return strncmp(name, "x-luaparty-", 11) == 0;
}

/* The hop marker (a forwarded request is never forwarded again) and the
 * shared secret the owner's internal listener asks for. */
static void add_hop_headers(const config *cfg, http_headers *out)
{
    const char *me = placement_node_id(), *secret = cfg->cluster.secret;
    http_headers_add(out, "x-luaparty-hop", 14, me, strlen(me));
    http_headers_add(out, "x-luaparty-secret", 17, secret, strlen(secret));
}

/* The headers a forwarded HTTP request carries to the owner. */
static void forward_headers(const config *cfg, const http_request *req, http_headers *out)
{
    for (size_t i = 0; i < req->headers.n; i++) {
        const http_header *h = &req->headers.items[i];
        if (hop_header(h->name)) continue;
        http_headers_add(out, h->name, strlen(h->name), h->value, strlen(h->value));
    }
    add_hop_headers(cfg, out);
}

/* A plain-text answer to req with one extra header (none if value is NULL). */
static void answer(http_peer *p, const http_request *req, int status, const char *body, const char *name,
                   const char *value)
{
    http_response *res = text_response(status, body, name, value);
    p->ops->respond(p, res, !req->upgrade && req->keep_alive, false, req->method, req->target, uv_hrtime());
    http_response_free(res);
}

static void unavailable(http_peer *p, const http_request *req, const char *why)
{
    answer(p, req, 503, why, "retry-after", "1");
}

/* A forwarded request for a room this node does not own: the forwarding
 * node drops its cached owner and asks again (once). */
static void misdirected(http_peer *p, const http_request *req, const char *owner)
{
    METRIC_ADD(cluster_misdirected, 1);
    answer(p, req, 421, "not the owner of this room", "x-luaparty-owner", owner && *owner ? owner : NULL);
}

static void place_request(http_peer *p, http_request *req, const route *rt);

/* A forwarding failed: 421 or an unreachable owner. The cached owner is
 * dropped and the request placed once more; a second failure is the
 * client's 502 (or 503 while a dead owner's lease runs out). */
static void retry_or_fail(http_peer *p, http_request *req, const route *rt, int status, const char *why)
{
    placement_forget(rt->party, rt->room);
    if (p->tries < 2) {
        place_request(p, req, rt);
        return;
    }
    char msg[600];
    if (status == 421) snprintf(msg, sizeof msg, "the room's owner keeps changing; try again");
    else snprintf(msg, sizeof msg, "the node that owns %s/%s is unreachable: %s", rt->party->name, rt->room, why);
    unavailable(p, req, msg);
    http_request_free(req);
}

/* A room request the peer waits for while it is placed or forwarded. */
typedef struct room_wait {
    awaiting a;
    http_request *req;
    route rt;
} room_wait;

/* The peer waits for req (taken) from now on. */
static room_wait *wait_for(http_peer *p, http_request *req, const route *rt)
{
    room_wait *rw = xcalloc(1, sizeof *rw);
    rw->a.peer = p;
    rw->req = req;
    rw->rt = *rt;
    p->waiting = &rw->a;
    p->ops->hold(p);
    return rw;
}

/* Of an owner's answer, what the client may not see: hop-by-hop headers
 * and our own, except who answered. */
static bool not_for_client(const char *name, const void *arg)
{
    return hop_header(name) && strcmp(name, "x-luaparty-node") != 0;
}

static http_response *response_of(fetch_result *res)
{
    http_response *out = http_response_new(res->status, NULL, NULL, 0);
    http_headers_free(&out->headers);
    out->headers = res->headers; /* moved, as the body: no copy per header */
    memset(&res->headers, 0, sizeof res->headers);
    http_headers_remove_if(&out->headers, not_for_client, NULL);
    out->body = res->body;
    buf_init(&res->body);
    return out;
}

static void forwarded(void *ud, fetch_result *res)
{
    room_wait *f = ud;
    http_peer *p = f->a.peer;
    http_request *req = f->req;
    if (!p) {
        http_request_free(req);
    } else {
        p->waiting = NULL;
        if (res->error || res->status == 421) {
            retry_or_fail(p, req, &f->rt, res->error ? 502 : 421, res->error ? res->error : "misdirected");
        } else {
            http_response *out = response_of(res);
            p->ops->respond(p, out, req->keep_alive, is_head(req), req->method, req->target, uv_hrtime());
            http_response_free(out);
            http_request_free(req);
        }
        if (!p->waiting) p->ops->resume(p);
    }
    fetch_result_free(res);
    free(f);
}

/* Sends req to the internal listener at host:port; done gets the answer. */
static void fetch_from_owner(worker *w, const http_request *req, const char *host, int port, size_t max_bytes,
                             fetch_done_fn done, void *ud)
{
    const config *cfg = w->cfg;
    /* An owner that hangs (paused, cut off) has lost its rooms one lease
     * later: a forwarded request waits no longer than that, then is placed
     * again (README "Cluster mode": room answers must come within the lease). */
    uint64_t lease = cfg->cluster.lease_ttl_ms;
    uint64_t timeout = cfg->fetch_timeout_ms < lease ? cfg->fetch_timeout_ms : lease;
    fetch_request fr = {.method = req->method, .body = req->body.data, .body_len = req->body.len,
                        .max_bytes = max_bytes, .timeout_ms = timeout, .forward = true};
    str_copy(fr.u.host, sizeof fr.u.host, host);
    fr.u.port = port;
    fr.u.target = xstrdup(req->target);
    forward_headers(cfg, req, &fr.headers);
    METRIC_ADD(cluster_proxied_requests, 1);
    fetch_start(w->loop, cfg, &fr, done, ud);
}

/* HTTP to the owner's internal listener, answered as if by this node. */
static void forward_http(http_peer *p, http_request *req, const route *rt, const char *host, int port)
{
    fetch_from_owner(p->w, req, host, port, p->w->cfg->max_output, forwarded, wait_for(p, req, rt));
}

/* A WebSocket to the owner: the peer's socket is spliced to it. */
static void forward_upgrade(http_peer *p, http_request *req, const char *host, int port)
{
    http_headers extra = {0};
    add_hop_headers(p->w->cfg, &extra);
    chunk *head = http_request_serialize(req, &extra);
    http_headers_free(&extra);
    METRIC_ADD(cluster_proxied_sockets, 1);
    p->ops->tunnel(p, host, port, req, head);
}

void dispatch_tunnel_failed(http_peer *p, http_request *req, int status, const char *why)
{
    route rt;
    route_parse(p->w->cfg, req->target, &rt);
    if (rt.kind != ROUTE_ROOM) { /* cannot happen: it was routed before */
        http_request_free(req);
        reply(p, 502, "bad forwarded request", true);
        return;
    }
    retry_or_fail(p, req, &rt, status, why);
}

static void deliver_there(http_peer *p, http_request *req, const route *rt, const place *where)
{
    char host[256];
    int port;
    if (p->internal) { /* forwarded once already: never again */
        misdirected(p, req, where->node);
        http_request_free(req);
    } else if (!host_port_split(where->addr, host, sizeof host, &port) || !port) {
        unavailable(p, req, "the room's owner has no usable internal address");
        http_request_free(req);
    } else if (req->upgrade) {
        forward_upgrade(p, req, host, port);
    } else {
        forward_http(p, req, rt, host, port);
    }
}

static void placed(void *arg, const place *where)
{
    room_wait *rw = arg;
    http_peer *p = rw->a.peer;
    http_request *req = rw->req;
    route rt = rw->rt;
    free(rw);
    if (!p) {
        http_request_free(req);
        return;
    }
    p->waiting = NULL;
    switch (where->kind) {
    case PLACE_HERE:
        if (req->upgrade) deliver_upgrade_here(p, req, &rt);
        else deliver_request_here(p, req, &rt);
        break;
    case PLACE_THERE: deliver_there(p, req, &rt, where); break;
    case PLACE_NONE:
        unavailable(p, req, where->why);
        http_request_free(req);
        break;
    }
    if (!p->waiting) p->ops->resume(p);
}

/* Asks placement where the room lives; placed() goes on from there. */
static void place_request(http_peer *p, http_request *req, const route *rt)
{
    p->tries++;
    placement_resolve(p->w, rt->party, rt->room, placed, wait_for(p, req, rt));
}

/* A request for a room, past the static hooks: here, or (cluster mode) on
 * the node that owns it. Lobbies ("") hold no state: every node has its own. */
static void deliver(http_peer *p, http_request *req, const route *rt)
{
    if (placement_clustered() && rt->room[0]) place_request(p, req, rt);
    else if (req->upgrade) deliver_upgrade_here(p, req, rt);
    else deliver_request_here(p, req, rt);
}

/* ---- cross-party fetch to a room of another node (calls.h) ---- */

typedef struct call_fwd {
    worker *w;
    const party *p;
    char *id;
    http_request *req;
    exchange *ex;
    int tries;
} call_fwd;

static void call_place(call_fwd *cf);

static void call_free(call_fwd *cf)
{
    http_request_free(cf->req);
    free(cf->id);
    free(cf);
}

static void call_answer(call_fwd *cf, int status, const char *msg)
{
    cf->ex->respond(cf->ex, text_response(status, msg, NULL, NULL));
    call_free(cf);
}

static void call_forwarded(void *ud, fetch_result *res)
{
    call_fwd *cf = ud;
    if (res->error || res->status == 421) {
        placement_forget(cf->p, cf->id);
        if (cf->tries < 2) {
            call_place(cf);
        } else {
            char msg[600];
            snprintf(msg, sizeof msg, "the node that owns %s/%s did not answer: %s", cf->p->name, cf->id,
                     res->error ? res->error : "misdirected");
            call_answer(cf, 502, msg);
        }
    } else {
        cf->ex->respond(cf->ex, response_of(res));
        call_free(cf);
    }
    fetch_result_free(res);
}

static void call_placed(void *arg, const place *where)
{
    call_fwd *cf = arg;
    char host[256];
    int port;
    if (where->kind == PLACE_HERE) {
        registry_request(cf->w, cf->p, cf->id, cf->req, cf->ex);
        cf->req = NULL;
        call_free(cf);
    } else if (where->kind == PLACE_NONE) {
        call_answer(cf, 503, where->why);
    } else if (!host_port_split(where->addr, host, sizeof host, &port) || !port) {
        call_answer(cf, 503, "the room's owner has no usable internal address");
    } else {
        fetch_from_owner(cf->w, cf->req, host, port, cf->w->cfg->fetch_max_bytes, call_forwarded, cf);
    }
}

static void call_place(call_fwd *cf)
{
    cf->tries++;
    placement_resolve(cf->w, cf->p, cf->id, call_placed, cf);
}

/* room.context.parties.X:get(id):fetch() in cluster mode: the room may be
 * another node's; the calling coroutine waits as it does for a local one. */
static void cluster_request(worker *w, const party *p, const char *id, http_request *req, exchange *ex)
{
    call_fwd *cf = xcalloc(1, sizeof *cf);
    *cf = (call_fwd){w, p, xstrdup(id), req, ex, 0};
    call_place(cf);
}

typedef struct place_call {
    const config *cfg;
    room_place_fn fn;
    void *arg;
} place_call;

static void call_where(void *arg, const place *where)
{
    place_call *pc = arg;
    if (where->kind == PLACE_HERE) {
        pc->fn(pc->arg, NULL, NULL, NULL, NULL);
    } else if (where->kind == PLACE_THERE) {
        http_headers hop = {0};
        add_hop_headers(pc->cfg, &hop);
        pc->fn(pc->arg, where->node, where->addr, &hop, NULL);
        http_headers_free(&hop);
    } else {
        pc->fn(pc->arg, NULL, NULL, NULL, where->why);
    }
    free(pc);
}

/* room.context.parties.X:get(id):socket() in cluster mode asks first. */
static void cluster_place(worker *w, const party *p, const char *id, room_place_fn fn, void *arg)
{
    place_call *pc = xmalloc(sizeof *pc);
    *pc = (place_call){w->cfg, fn, arg};
    placement_resolve(w, p, id, call_where, pc);
}

void dispatch_start(worker *w)
{
    static const room_calls calls = {registry_owner, registry_resolve, registry_with_room, cluster_request,
                                     cluster_place};
    if (placement_clustered()) w->calls = &calls;
}

/* ---- static hooks: onBeforeConnect, onBeforeRequest, onFetch ---- */

typedef struct admission {
    gatekeeper g;
    awaiting a;
    http_request *req;
    hook_kind kind;
    route rt;
    uint64_t start;
} admission;

/* Lets the request through to its room, with the headers a hook returned. */
static void admit_through(http_peer *p, admission *ad, http_headers *headers)
{
    http_request *req = ad->req;
    ad->req = NULL;
    if (headers) { /* the hook returned a modified request */
        http_headers_free(&req->headers);
        req->headers = *headers;
        memset(headers, 0, sizeof *headers);
    }
    deliver(p, req, &ad->rt);
}

static void on_decision(gatekeeper *g, http_response *res, http_headers *headers)
{
    admission *ad = (admission *)g;
    http_peer *p = ad->a.peer;
    http_request *req = ad->req;
    if (p) {
        p->waiting = NULL;
        if (res) {
            add_cors(p->w->cfg, res);
            p->ops->respond(p, res, ad->kind != HOOK_BEFORE_CONNECT && req->keep_alive, is_head(req), req->method,
                            req->target, ad->start);
        } else if (ad->kind == HOOK_FETCH) {
            reply(p, 404, "Not found", !req->keep_alive);
        } else {
            admit_through(p, ad, headers);
        }
        p->ops->resume(p);
    }
    http_request_free(ad->req);
    http_response_free(res);
    if (headers) http_headers_free(headers);
    free(headers);
    free(ad);
}

/* Asks the party's lobby (room "") what to do with req. Takes req. */
static void admit(http_peer *p, http_request *req, hook_kind kind, const route *rt)
{
    room *lobby = resolve(p, rt->party, "", kind == HOOK_BEFORE_CONNECT || !req->keep_alive);
    if (!lobby) {
        http_request_free(req);
        return;
    }
    p->ops->hold(p);
    admission *ad = xcalloc(1, sizeof *ad);
    ad->g.decide = on_decision;
    ad->a.peer = p;
    ad->req = req;
    ad->kind = kind;
    ad->rt = *rt;
    ad->start = uv_hrtime();
    p->waiting = &ad->a;
    room_hook(lobby, kind, req, rt->room, &ad->g);
}

/* ---- dev: GET /__scheduled__?cron=NAME runs a cron now, as partykit dev does ---- */

typedef struct scheduled {
    gatekeeper g;
    awaiting a;
    bool keep_alive;
} scheduled;

static void scheduled_answer(gatekeeper *g, http_response *res, http_headers *headers)
{
    scheduled *sc = (scheduled *)g;
    http_peer *p = sc->a.peer;
    if (p) {
        p->waiting = NULL;
        if (res) p->ops->respond(p, res, sc->keep_alive, false, NULL, NULL, 0);
        else reply(p, 200, "cron ran", !sc->keep_alive);
        p->ops->resume(p);
    }
    http_response_free(res);
    if (headers) http_headers_free(headers);
    free(headers);
    free(sc);
}

static bool trigger_cron(http_peer *p, const http_request *req)
{
    if (!p->w->cfg->dev || strncmp(req->target, "/__scheduled__", 14) != 0) return false;
    char name[128];
    if (!query_param(req->target, "cron", name, sizeof name)) {
        reply(p, 400, "use /__scheduled__?cron=NAME", !req->keep_alive);
        return true;
    }
    scheduled *sc = xcalloc(1, sizeof *sc);
    sc->g.decide = scheduled_answer;
    sc->a.peer = p;
    sc->keep_alive = req->keep_alive;
    p->waiting = &sc->a;
    if (!cron_trigger(p->w, name, &sc->g)) {
        p->waiting = NULL;
        free(sc);
        reply(p, 404, "no such cron (or no onCron in the main party)", !req->keep_alive);
    }
    return true;
}

/* ---- the two walks ---- */

static bool serve_file(http_peer *p, const http_request *req)
{
    http_response *file = static_serve(p->w->cfg, req);
    if (!file) return false;
    p->ops->respond(p, file, req->keep_alive, is_head(req), req->method, req->target, uv_hrtime());
    http_response_free(file);
    return true;
}

/* rt: req's route, parsed once by the caller (and changed here). Takes req. */
static void handle_request(http_peer *p, http_request *req, route *rt)
{
    const party *main_party = p->w->cfg->parties[0];
    bool outside = rt->kind == ROUTE_NOT_FOUND; /* not a party URL */
    if ((outside && (trigger_cron(p, req) || serve_file(p, req))) || (rt->kind == ROUTE_ROOM && preflight(p, req))) {
        http_request_free(req);
    } else if (outside && (main_party->hooks & PARTY_HAS_FETCH)) {
        rt->party = main_party;
        admit(p, req, HOOK_FETCH, rt);
    } else if (route_error(p, rt, !req->keep_alive)) {
        http_request_free(req);
    } else if (rt->party->hooks & PARTY_HAS_BEFORE_REQUEST) {
        admit(p, req, HOOK_BEFORE_REQUEST, rt);
    } else {
        deliver(p, req, rt);
    }
}

static void handle_upgrade(http_peer *p, http_request *req, route *rt)
{
    const char *why = NULL;
    int bad = ws_check_upgrade(req, &why);
    const party *main_party = p->w->cfg->parties[0];
    if (rt->kind == ROUTE_NOT_FOUND && !bad && (main_party->hooks & PARTY_HAS_SOCKET)) {
        /* a WebSocket outside the parties: the main party's onSocket, in its lobby */
        rt->kind = ROUTE_ROOM;
        rt->party = main_party;
        rt->room[0] = 0;
    }
    if (route_error(p, rt, true)) {
        http_request_free(req);
    } else if (bad) {
        reply(p, bad, why, true);
        http_request_free(req);
    } else if ((rt->party->hooks & PARTY_HAS_BEFORE_CONNECT) && rt->room[0]) { /* not for onSocket */
        admit(p, req, HOOK_BEFORE_CONNECT, rt);
    } else {
        deliver(p, req, rt);
    }
}

static void walk(http_peer *p, http_request *req, bool upgrade, route *rt)
{
    if (p->internal) { /* forwarded by another node, which ran the static hooks */
        if (route_error(p, rt, !req->keep_alive || upgrade)) http_request_free(req);
        else deliver(p, req, rt);
    } else if (upgrade) {
        handle_upgrade(p, req, rt);
    } else {
        handle_request(p, req, rt);
    }
}

/* Constant time: how long a wrong secret took to refuse says nothing. */
static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la; i++) diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

/* Cluster mode: x-luaparty-* headers are ours. A client's are dropped (it
 * could spoof a hop marker); a forwarded request must carry the shared
 * secret, and party code sees neither. False if the peer got a 403. */
static bool check_cluster_headers(http_peer *p, http_request *req)
{
    if (p->internal) {
        const char *got = http_headers_get(&req->headers, "x-luaparty-secret");
        if (!got || !same_secret(got, p->w->cfg->cluster.secret)) {
            log_warn("internal listener: a request without the cluster secret (%s %s): refused", req->method,
                     req->target);
            reply(p, 403, "the cluster secret is missing or wrong", true);
            http_request_free(req);
            return false;
        }
    }
    http_headers_remove_prefix(&req->headers, "x-luaparty-");
    return true;
}

void dispatch_request(http_peer *p, http_request *req, bool upgrade)
{
    route rt;
    route_parse(p->w->cfg, req->target, &rt);
    p->tries = 0;
    if (placement_clustered() && !check_cluster_headers(p, req)) return;
    /* A room's WebSockets live on the room's worker; an HTTP client may
     * follow its first room there (the peer decides if it can move). */
    if (rt.kind == ROUTE_ROOM && rt.room[0]) {
        worker *owner = registry_owner(p->w, rt.party, rt.room);
        if (owner != p->w && p->ops->move(p, req, upgrade, owner)) return;
    }
    walk(p, req, upgrade, &rt);
}

void dispatch_arrived(http_peer *p, http_request *req, bool upgrade)
{
    route rt;
    route_parse(p->w->cfg, req->target, &rt);
    walk(p, req, upgrade, &rt);
}
