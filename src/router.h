/* router.h - which room a request target names (PartyKit's URL scheme):
 *   /parties/:party/:room[/sub/path][?query]
 *   /party/:room[...]            (alias of the main party)
 * Room ids are taken raw (not percent-decoded), as PartyKit does. */
#ifndef LP_ROUTER_H
#define LP_ROUTER_H

#include "config.h"
#include <stdbool.h>

#define ROUTE_MAX_ROOM_ID 256

typedef enum {
    ROUTE_NOT_FOUND,      /* not a party URL */
    ROUTE_ROOM,           /* party and room set */
    ROUTE_UNKNOWN_PARTY,  /* a party URL, but no such party (name set) */
    ROUTE_ID_TOO_LONG,    /* room id over ROUTE_MAX_ROOM_ID bytes */
} route_kind;

typedef struct route {
    route_kind kind;
    const party *party;
    char name[128];                      /* the party name as written */
    char room[ROUTE_MAX_ROOM_ID + 1];
} route;

void route_parse(const config *cfg, const char *target, route *out);
/* Copies the URL-decoded value of query parameter `name` into out. Returns
 * false if the parameter is absent. */
bool query_param(const char *target, const char *name, char *out, size_t cap);

#endif
