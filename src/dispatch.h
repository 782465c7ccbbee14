/* dispatch.h - where a parsed request meets its room.
 *
 * The network side (server.c) parses HTTP and WebSocket frames and hands
 * every request to dispatch_request; dispatch routes it (router.c), answers
 * what no room needs (static files, CORS preflights, route errors, the dev
 * cron trigger), runs a party's static hooks, and delivers the rest to the
 * room through the registry. It talks back to the client only through
 * http_peer's ops, so it never sees a socket. This is the layer where a
 * cluster mode decides "local room, or proxy to its owner". */
#ifndef LP_DISPATCH_H
#define LP_DISPATCH_H

#include "config.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "worker.h"

typedef struct http_peer http_peer;

/* Something a peer's request waits for (a room's onRequest, a static hook,
 * a cron run). The peer forgets it when the client goes away (peer = NULL)
 * and the answer is dropped when it comes. */
typedef struct awaiting {
    http_peer *peer;
} awaiting;

typedef struct peer_ops {
    /* Queues res (not taken), then keeps the connection for the next
     * request or closes it. method/target (NULL: the request being read)
     * and start are for the request log line. */
    void (*respond)(http_peer *p, const http_response *res, bool keep_alive, bool head, const char *method,
                    const char *target, uint64_t start);
    /* The request is with a room or a hook: its header deadline stops. */
    void (*hold)(http_peer *p);
    /* An answer came: go on with input that waited (pipelined requests, or
     * a new WebSocket's early frames). */
    void (*resume)(http_peer *p);
    /* Takes req (and the peer's socket) to the worker that owns its room;
     * false if the peer must stay (then req is still the caller's). */
    bool (*move)(http_peer *p, http_request *req, bool upgrade, worker *to);
    /* Answers the upgrade with 101 (naming node, in cluster mode) and
     * becomes a WebSocket whose connection id is `id`; NULL if its session
     * cannot start (answered with 500). */
    lp_conn *(*accept_ws)(http_peer *p, const http_request *req, const char *id, const char *node);
    /* Splices the peer's socket to another node at host:port: head (the
     * forwarded request) goes first, then bytes flow both ways until either
     * side closes. req is kept until that node answers; if it cannot be
     * reached, or answers 421, dispatch_tunnel_failed gets req back (the
     * peer is an HTTP peer again). Takes req and head. */
    void (*tunnel)(http_peer *p, const char *host, int port, http_request *req, chunk *head);
} peer_ops;

struct http_peer {
    const peer_ops *ops;
    worker *w;
    awaiting *waiting;      /* while set, the peer reads no further request */
    bool internal;          /* came in on the internal listener: another node forwarded it */
    unsigned char tries;    /* placements of the current request (a retry after 421 or a dead owner) */
};

/* Cluster mode: cross-party fetches of w's rooms reach rooms of other nodes
 * (w->calls). After registry_start and placement_start, before the worker runs. */
void dispatch_start(worker *w);

/* A request read on p (taken). upgrade: it asks for a WebSocket; the bytes
 * that followed it wait in the peer until resume. */
void dispatch_request(http_peer *p, http_request *req, bool upgrade);
/* The same for a request that followed its peer to this worker (no second move). */
void dispatch_arrived(http_peer *p, http_request *req, bool upgrade);

/* A tunnel (peer_ops.tunnel) found no owner there: status 421 (the node does
 * not own the room), or 502 (unreachable; why says how). Takes req. */
void dispatch_tunnel_failed(http_peer *p, http_request *req, int status, const char *why);

/* A WebSocket's message and its end, on their way to its room. */
void dispatch_ws_message(lp_conn *c, int opcode, const void *data, size_t len);
/* reason: the peer's close reason (NULL if none); error: why the server
 * ended it (NULL for a clean close; the room's onError gets it). */
void dispatch_ws_closed(lp_conn *c, int code, const char *reason, const char *error);

/* One line per answered request: in dev, or at log level debug. */
static inline bool dispatch_logs_requests(const config *cfg) { return cfg->dev || log_get_level() <= LOG_DEBUG; }

#endif
