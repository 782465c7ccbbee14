/* dial.h - an outbound byte stream: resolve (never blocking the loop),
 * connect, optional TLS with verification, then plaintext in and out.
 * Used by outbound fetch (fetch.c) and outbound WebSockets (wsclient.c). */
#ifndef LP_DIAL_H
#define LP_DIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct dial dial;
struct config;

/* A parsed http(s):// or ws(s):// URL. */
typedef struct url {
    bool tls;          /* https or wss */
    bool ws;           /* ws or wss */
    char host[256];
    int port;
    char *target;      /* path + query (caller frees) */
} url;

/* Returns 0, or -1 with *why (static text). */
int dial_parse_url(const char *s, url *u, const char **why);
/* False if partykit.json's luaparty.outbound is set and does not list host
 * (exact, or "*.domain" for subdomains). */
bool dial_allowed(const struct config *cfg, const char *host);

typedef struct dial_events {
    void (*on_open)(dial *d);                              /* connected (and TLS done) */
    void (*on_data)(dial *d, const char *data, size_t len); /* plaintext from the peer */
    void (*on_eof)(dial *d);                               /* the peer closed */
    void (*on_error)(dial *d, const char *msg);            /* any failure; then closed */
} dial_events;

/* Starts connecting; events follow. host may be a name or an IP literal. */
dial *dial_new(uv_loop_t *loop, const char *host, int port, bool tls, const dial_events *ev, void *ud);
/* Queues plaintext (encrypted here on TLS). Returns 0, or -1 after on_error. */
int dial_send(dial *d, const void *data, size_t len);
/* Closes; no callback runs after this, memory goes when the handle closed. */
void dial_close(dial *d);
/* Like dial_close, but what was queued with dial_send is written first. */
void dial_end(dial *d);
void *dial_data(const dial *d);
bool dial_open(const dial *d);

#endif
