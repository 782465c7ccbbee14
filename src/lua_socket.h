/* lua_socket.h - a socket as the room that opened it sees it: send,
 * receive([timeout]), close, and onmessage/onclose. Two kinds live behind
 * it: a cross-party pipe to another room (lua_pipe.c) and an outbound
 * WebSocket to the network (lua_wsclient.c). Messages from the far side arrive
 * through endpoint_deliver / endpoint_closed, always as room events. */
#ifndef LP_LUA_SOCKET_H
#define LP_LUA_SOCKET_H

#include "buf.h"
#include <lua.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <uv.h>

struct room;
struct task;
typedef struct endpoint endpoint;

typedef struct endpoint_ops {
    /* Lua sent a message to the far side. */
    void (*send)(endpoint *e, chunk *msg);
    /* Lua closed the socket. */
    void (*close)(endpoint *e, int code, const char *reason, size_t len);
    /* The Lua handle is gone (garbage, or the room closed): let go. */
    void (*release)(endpoint *e);
} endpoint_ops;

struct endpoint {
    const endpoint_ops *ops;
    struct room *caller;   /* NULL once the caller let go */
    int listener_ref;      /* caller registry ref of the Lua socket object */
    struct task *waiter;   /* a caller task blocked in receive() */
    uv_timer_t *timer;     /* receive(timeout); freed by its close callback */
    bool closed;
    int close_code;        /* why it closed, once it has */
    char *close_reason;
};

/* Fills e and pushes the Lua handle for it; the Lua socket object is at
 * listener_idx (it gets the events). Pins the caller room while open. */
void endpoint_open(lua_State *L, endpoint *e, const endpoint_ops *ops, int listener_idx);
/* The far side sent a message / closed (reason: why, or NULL). */
void endpoint_deliver(endpoint *e, chunk *msg);
void endpoint_closed(endpoint *e, int code, const char *reason);
/* Frees the endpoint's own resources (its timer). */
void endpoint_cleanup(endpoint *e);

/* The socket object's functions of luaparty.core (lua_bind.h). */
extern const luaL_Reg lua_socket_functions[];

#endif
