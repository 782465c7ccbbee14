/* lua_wsclient.c - luaparty.connect(url [, options]): an outbound WebSocket
 * (wsclient.c) as the room that opened it sees it, with the same socket
 * shape as a cross-party socket (lua_socket.h): send, receive, close,
 * onmessage, onclose. This file checks what the party asked for and passes
 * the client's events on to the socket; the WebSocket itself is wsclient.c's. */
#include "wsclient.h"
#include "log.h"
#include "lua_wsclient.h"
#include "lua_request.h"
#include "lua_socket.h"
#include "room.h"
#include "worker.h"

#include <stdlib.h>
#include <string.h>

typedef struct lua_ws {
    endpoint ep;           /* first: the socket's ops get &ep */
    wsclient *client;
    char *node;            /* a cross-party socket to a room of this node, else NULL */
} lua_ws;

static lua_ws *of_ep(endpoint *e) { return (lua_ws *)e; }

/* ---- the client's events, to the socket ---- */

static void on_message(wsclient *c, chunk *msg) { endpoint_deliver(&((lua_ws *)wsclient_data(c))->ep, msg); }

static void on_close(wsclient *c, int code, const char *reason)
{
    endpoint_closed(&((lua_ws *)wsclient_data(c))->ep, code, reason);
}

static void on_error(wsclient *c, const char *msg)
{
    lua_ws *s = wsclient_data(c);
    const url *u = wsclient_url(c);
    if (!s->ep.caller) {
        endpoint_closed(&s->ep, 1006, msg);
    } else if (s->node) { /* say which node failed */
        char why[400];
        snprintf(why, sizeof why, "socket to node %s (%s:%d) failed: %s", s->node, u->host, u->port, msg);
        log_warn("%s/%s: %s", s->ep.caller->party->name, s->ep.caller->id, why);
        endpoint_closed(&s->ep, 1006, why);
    } else {
        log_warn("%s/%s: connect(%s:%d): %s", s->ep.caller->party->name, s->ep.caller->id, u->host, u->port, msg);
        endpoint_closed(&s->ep, 1006, msg);
    }
}

static const wsclient_events events = {on_message, on_close, on_error};

/* ---- the socket's ops, to the client ---- */

static void ep_send(endpoint *e, chunk *msg) { wsclient_send(of_ep(e)->client, msg); }

static void ep_close(endpoint *e, int code, const char *reason, size_t len)
{
    wsclient_close(of_ep(e)->client, code, reason, len);
}

static void ep_release(endpoint *e)
{
    lua_ws *s = of_ep(e);
    wsclient_free(s->client);
    endpoint_cleanup(&s->ep);
    free(s->node);
    free(s);
}

static const endpoint_ops ws_ep_ops = {ep_send, ep_close, ep_release};

/* core.ws_connect(url, headers, listener) -> handle */
static int l_ws_connect(lua_State *L)
{
    room *r = room_from_state(L);
    const char *target = luaL_checkstring(L, 1);
    http_headers h = {0};
    lua_check_headers(L, 2, &h); /* may raise: nothing allocated yet */
    luaL_checktype(L, 3, LUA_TTABLE);
    static const char *reserved[] = {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version"};
    for (size_t i = 0; i < 4; i++)
        if (http_headers_get(&h, reserved[i])) {
            http_headers_free(&h);
            return luaL_error(L, "connect: the %s header is set by luaparty, not by options.headers", reserved[i]);
        }
    url u;
    const char *why = NULL;
    if (dial_parse_url(target, &u, &why) != 0 || (!u.ws && (why = "use ws:// or wss:// (fetch is for http)"))) {
        http_headers_free(&h);
        free(u.target);
        return luaL_error(L, "connect('%s'): %s", target, why);
    }
    if (!dial_allowed(r->owner->cfg, u.host)) {
        http_headers_free(&h);
        free(u.target);
        return luaL_error(L, "connect to %s refused: the host is not in luaparty.outbound of partykit.json", u.host);
    }
    lua_ws_open(L, r, &u, &h, 3, NULL);
    http_headers_free(&h);
    return 1;
}

void lua_ws_open(lua_State *L, room *r, url *u, const http_headers *h, int listener_idx, const char *node)
{
    lua_ws *s = xcalloc(1, sizeof *s);
    s->node = node ? xstrdup(node) : NULL;
    endpoint_open(L, &s->ep, &ws_ep_ops, listener_idx); /* before connecting: a failure at once closes the socket */
    s->client = wsclient_new(r->owner->loop, u, h, r->owner->cfg->max_message, &events, s);
}

void lua_wsclient_register(lua_State *L)
{
    lua_pushcfunction(L, l_ws_connect);
    lua_setfield(L, -2, "ws_connect");
}
