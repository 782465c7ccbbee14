/* runner.h - making a room and running its events (runner.c); its inputs,
 * outputs and gates are room.h's. */
#ifndef LP_RUNNER_H
#define LP_RUNNER_H

#include "room.h"

/* Creates the room and its Lua state. On a load error returns NULL and
 * *err (caller frees) holds the Lua message. */
room *room_create(struct worker *w, const party *p, const char *id, char **err);
/* Server shutdown: drops its connections and tasks so every cycle breaks;
 * the room is freed once nothing else holds it. */
void room_shutdown(room *r);
/* Runs queued events until the queue is empty or blocked. */
void room_run(room *r);

#endif
