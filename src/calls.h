/* calls.h - how party code reaches other rooms (room.context.parties:
 * :get(id):fetch() and :socket()) without the bindings knowing where rooms
 * live. The registry fills a worker's table in (registry_start); a cluster
 * mode can route calls to rooms of other nodes through the same table. */
#ifndef LP_CALLS_H
#define LP_CALLS_H

#include "room.h"

typedef void (*room_visit)(room *r, void *arg, const char *err);

/* Where a room is served: here (node, addr and hop NULL, err NULL), on
 * another node (its id, internal address, and the headers a request must
 * carry there: hop marker and cluster secret), or nowhere now (err). */
typedef void (*room_place_fn)(void *arg, const char *node, const char *addr, const http_headers *hop,
                              const char *err);

typedef struct room_calls {
    /* The worker that owns room (party, id). */
    worker *(*owner)(worker *w, const party *p, const char *id);
    /* The live room of w (started on first use), or NULL with *err. */
    room *(*resolve)(worker *w, const party *p, const char *id, char **err);
    /* Runs fn(room, arg, NULL) on the owner's thread, or fn(NULL, arg, err). */
    void (*visit)(worker *w, const party *p, const char *id, room_visit fn, void *arg);
    /* Hands req to the room wherever it lives; ex is answered on w's thread. */
    void (*request)(worker *w, const party *p, const char *id, http_request *req, exchange *ex);
    /* Which node serves the room: fn runs on w's thread, possibly at once. */
    void (*place)(worker *w, const party *p, const char *id, room_place_fn fn, void *arg);
} room_calls;

#endif
