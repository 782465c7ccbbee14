/* registry.h - the one place that finds rooms (the placement seam).
 *
 * HTTP routing, WebSocket upgrades, cross-party calls and (later) alarms all
 * call registry_resolve; nothing else looks rooms up. On one node a room is
 * always local; a cluster mode answers "remote" here. */
#ifndef LP_REGISTRY_H
#define LP_REGISTRY_H

#include "calls.h"
#include "config.h"
#include "room.h"
#include "worker.h"

/* The worker that owns room (party, id): a hash of both, so a room always
 * lands on the same worker while the worker count stays. A lobby (id "")
 * holds no state: every worker has its own. */
worker *registry_owner(worker *w, const party *p, const char *id);

/* Returns the live room (party, id) of this worker, creating it on first
 * use. NULL with *err (caller frees) if its script fails to load, the
 * worker is shutting down (w->closed: no room may start), or (cluster mode)
 * this node released the room after it was placed here: *err is then
 * REGISTRY_ROOM_MOVED, and the room is to be placed again. Only for
 * rooms w owns (registry_owner), which every caller below makes sure of. */
#define REGISTRY_ROOM_MOVED "the room was released by this node meanwhile: try again"
room *registry_resolve(worker *w, const party *p, const char *id, char **err);

/* Runs fn(room, arg, NULL) on the owner's thread with the live room (now,
 * if w owns it), or fn(NULL, arg, error) there if it cannot start. */
void registry_with_room(worker *w, const party *p, const char *id, room_visit fn, void *arg);

/* Hands req to room (party, id) wherever it lives; ex is answered on w's
 * thread (see exchange in room.h). Takes req. */
void registry_request(worker *w, const party *p, const char *id, http_request *req, exchange *ex);
/* Takes a room out of service now (the drain seam): closes its connections
 * with code/reason and unloads it; the next request makes a fresh one.
 * Used for idle unloading and for a room reset after a storage failure. */
void registry_evict(worker *w, room *r, int code, const char *reason);
/* Calls fn(room, ud) for every live room of w (lobbies included), on w's
 * thread or while w is paused (worker_pause_others). fn must not add or
 * remove rooms. */
void registry_each(worker *w, void (*fn)(room *r, void *ud), void *ud);
/* How many live rooms of w belong to p (all if p is NULL) and, with list,
 * those rooms (caller frees), so a caller can change the registry while it
 * goes through them. */
size_t registry_rooms(worker *w, const party *p, room ***list);
/* Takes every room of w out of service (a node that lost its lease: 1012). */
void registry_evict_all(worker *w, int code, const char *reason);
/* Starts unloading rooms idle for longer than the configured idle timeout. */
void registry_start(worker *w);
/* Shutdown: drops every room; none may start after this (w->closed). */
void registry_close(worker *w);
/* True if no room has events queued, tasks suspended or output held. */
bool registry_quiet(worker *w);

#endif
