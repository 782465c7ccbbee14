/* registry.h - the one place that finds rooms (the placement seam).
 *
 * HTTP routing, WebSocket upgrades, cross-party calls and (later) alarms all
 * call registry_resolve; nothing else looks rooms up. On one node a room is
 * always local; a cluster mode answers "remote" here. */
#ifndef LP_REGISTRY_H
#define LP_REGISTRY_H

#include "config.h"
#include "room.h"
#include "worker.h"

/* Returns the live room (party, id), creating it on first use. NULL with
 * *err (caller frees) if its script fails to load. */
room *registry_resolve(worker *w, const party *p, const char *id, char **err);
/* Takes a room out of service now (the drain seam): closes its connections
 * with code/reason and unloads it; the next request makes a fresh one.
 * Used for idle unloading and for a room reset after a storage failure. */
void registry_evict(worker *w, room *r, int code, const char *reason);
/* Unloads rooms idle for longer than the configured idle timeout. */
void registry_sweep(worker *w);
/* Drops every room (shutdown). */
void registry_clear(worker *w);
/* True if no room has events queued, tasks suspended or output held. */
bool registry_quiet(worker *w);

#endif
