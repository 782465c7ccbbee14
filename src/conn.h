/* conn.h - the connection interface a room talks to.
 *
 * A room never touches a socket: it sees lp_conn, whose ops are implemented
 * by a real WebSocket client (server.c) or by the room side of an in-process
 * cross-party socket (lua_party.c). A later cluster mode adds a remote
 * implementation without changing rooms. */
#ifndef LP_CONN_H
#define LP_CONN_H

#include "buf.h"
#include <stdbool.h>

struct room;
typedef struct lp_conn lp_conn;

/* A Lua handle's pointer to its connection (lua_conn.c makes them): cleared
 * when the connection is freed, so a handle kept by party code goes dead
 * instead of dangling. */
typedef struct conn_box {
    lp_conn *c;
} conn_box;

typedef struct conn_ops {
    /* Queue one message (a chunk made by ws_msg_new). */
    void (*send)(lp_conn *c, chunk *msg);
    /* Start the closing handshake with code/reason. */
    void (*close)(lp_conn *c, int code, const char *reason, size_t len);
    /* Last reference gone: free the object that embeds this lp_conn. */
    void (*destroy)(lp_conn *c);
} conn_ops;

struct lp_conn {
    const conn_ops *ops;
    struct room *room;
    /* Set by the room that took the connection: lets go of what the room
     * holds for it (its Lua handle, the room reference). conn_cleanup calls
     * it, so a connection never needs to know what a room is. */
    void (*release)(lp_conn *c);
    struct conn_box *box;   /* the Lua handle, NULL when none (see lua_conn.c) */
    int obj_ref;            /* registry ref to the runtime's object for it (valid while joined) */
    char *id;               /* connection id (_pk or a UUID) */
    char *uri;              /* the URL the client connected to */
    int refs;
    unsigned short metric_party; /* its room's party's slot in /metrics (room_connect) */
    bool joined;            /* in the room's connection list */
    bool busy;              /* one of its callbacks is suspended: later events wait */
    bool gone;              /* transport closed: sends are dropped */
    lp_conn *prev, *next;   /* room's list */
};

void conn_init(lp_conn *c, const conn_ops *ops, const char *id, const char *uri);
/* Releases the room's hold (release) and frees id/uri; called by the
 * implementation's destroy. */
void conn_cleanup(lp_conn *c);
static inline void conn_ref(lp_conn *c) { c->refs++; }
void conn_unref(lp_conn *c);

#endif
