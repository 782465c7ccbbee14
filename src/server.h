/* server.h - the listening socket and every client connection on it. */
#ifndef LP_SERVER_H
#define LP_SERVER_H

#include "worker.h"
#include <uv.h>

typedef struct client client;

typedef struct server {
    uv_tcp_t listener;
    uv_tcp_t internal;       /* cluster mode: requests forwarded by other nodes */
    uv_prepare_t flusher;    /* writes queued output before each poll */
    uv_check_t early_flusher; /* and after it, while rooms have paused steps (server.c) */
    uv_timer_t pinger;       /* pings idle WebSockets, drops dead ones */
    uv_timer_t parker;       /* frees the WebSocket parsers of quiet clients */
    uv_timer_t trimmer;      /* gives memory back to the system after large frees */
    worker *w;
    const config *cfg;
    client *clients;         /* every open client */
    client *dirty;           /* clients with output to flush */
    size_t nclients;
    bool listening, internal_listening, early_flushing;
    char rbuf[65536];        /* one read slab: reads are consumed synchronously */
} server;

/* Binds host:port (0 = any free port) and, in cluster mode, the internal
 * listener, or with first != NULL listens on the same sockets as another
 * worker's server. Returns 0, or -1 with *err. */
int server_listen(server *s, worker *w, const server *first, char **err);
int server_port(server *s);
/* The internal listener's port (cluster mode), else 0. */
int server_internal_port(server *s);
/* Stops accepting and starts closing every client (WebSockets with 1001). */
void server_shutdown(server *s);
/* Frees what is left once the loop has finished closing handles. */
void server_free(server *s);
size_t server_clients(const server *s);

#endif
