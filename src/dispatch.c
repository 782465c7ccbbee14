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
#include "cron.h"
#include "metrics.h"
#include "registry.h"
#include "room.h"
#include "router.h"
#include "static.h"
#include "ws.h"

#include <stdlib.h>
#include <string.h>

/* ---- answering the peer ---- */

static void reply(http_peer *p, int status, const char *body, bool close)
{
    http_response *res = http_response_new(status, "text/plain;charset=UTF-8", body, strlen(body));
    p->ops->respond(p, res, !close, false, NULL, NULL, 0);
    http_response_free(res);
}

static bool is_head(const http_request *req) { return strcmp(req->method, "HEAD") == 0; }

/* luaparty.cors: party responses may be read by pages of that origin. */
static void add_cors(const config *cfg, http_response *res)
{
    if (!cfg->cors_origin || http_headers_get(&res->headers, "access-control-allow-origin")) return;
    http_headers_add(&res->headers, "access-control-allow-origin", 27, cfg->cors_origin, strlen(cfg->cors_origin));
    if (strcmp(cfg->cors_origin, "*") != 0) http_headers_add(&res->headers, "vary", 4, "Origin", 6);
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
        reply(p, 500, p->w->cfg->dev ? err : "Internal Server Error", close);
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
    free(pe);
}

static void exchange_respond(exchange *ex, http_response *res)
{
    peer_exchange *pe = (peer_exchange *)ex;
    http_peer *p = pe->a.peer;
    if (p) {
        p->waiting = NULL;
        add_cors(p->w->cfg, res);
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
        reply(p, 500, p->w->cfg->dev ? err : "Internal Server Error", !pe->keep_alive);
        p->ops->resume(p);
    }
    exchange_free(pe);
}

/* Hands an HTTP request to its room (onRequest), on whichever worker. */
static void deliver_request(http_peer *p, http_request *req, const route *rt)
{
    p->ops->hold(p); /* the room takes its time */
    peer_exchange *pe = xcalloc(1, sizeof *pe);
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

/* Completes a WebSocket upgrade: 101, then the room's onConnect. Takes req. */
static void deliver_upgrade(http_peer *p, http_request *req, const route *rt)
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
    lp_conn *c = p->ops->accept_ws(p, req, id);
    if (!c) goto done;
    if (cfg->dev) log_info("connect %s/%s id=%s", rt->party->name, rt->room, id);
    METRIC_ADD(connections_opened, 1);
    room_connect(r, c, req); /* takes req */
    p->ops->resume(p);       /* frames that came with the upgrade */
    return;
done:
    http_request_free(req);
}

void dispatch_ws_message(lp_conn *c, int opcode, const void *data, size_t len)
{
    room_message_bytes(c, opcode, data, len);
}

void dispatch_ws_closed(lp_conn *c, int code, const char *error) { room_disconnect(c, code, error); }

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
    if (ad->kind == HOOK_BEFORE_CONNECT) deliver_upgrade(p, req, &ad->rt);
    else deliver_request(p, req, &ad->rt);
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
        deliver_request(p, req, rt);
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
        deliver_upgrade(p, req, rt);
    }
}

static void walk(http_peer *p, http_request *req, bool upgrade, route *rt)
{
    if (upgrade) handle_upgrade(p, req, rt);
    else handle_request(p, req, rt);
}

void dispatch_request(http_peer *p, http_request *req, bool upgrade)
{
    route rt;
    route_parse(p->w->cfg, req->target, &rt);
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
