/* wsclient.h - an outbound WebSocket (ws:// and wss://): the opening
 * handshake, then frames in client mode. Network only: what arrives goes
 * to C callbacks (lua_wsclient.c makes luaparty.connect of it). */
#ifndef LP_WSCLIENT_H
#define LP_WSCLIENT_H

#include "buf.h"
#include "dial.h"
#include "http.h"
#include <uv.h>

typedef struct wsclient wsclient;

/* The first on_close or on_error says how the socket ended; more may come
 * after it (the server's close frame, then the end of the connection) and
 * tell nothing new. */
typedef struct wsclient_events {
    void (*on_message)(wsclient *w, chunk *msg);                 /* text or binary; the callee refs to keep it */
    void (*on_close)(wsclient *w, int code, const char *reason); /* reason may be NULL */
    void (*on_error)(wsclient *w, const char *msg);              /* could not connect (dial.c's error) */
} wsclient_events;

/* Connects to u (the client takes u->target), sending headers with the
 * handshake (a "host" among them replaces ours). Events may come before
 * this returns. */
wsclient *wsclient_new(uv_loop_t *loop, url *u, const http_headers *headers, size_t max_message,
                       const wsclient_events *ev, void *ud);
/* Sends a message; one sent before the handshake finished waits for it. */
void wsclient_send(wsclient *w, chunk *msg);
/* Starts the closing handshake; before the opening one finished it aborts
 * the connection instead, as a browser's WebSocket does. */
void wsclient_close(wsclient *w, int code, const char *reason, size_t len);
/* Closes at once; no event after this. */
void wsclient_free(wsclient *w);
void *wsclient_data(const wsclient *w);
const url *wsclient_url(const wsclient *w);

#endif
