/* registry.c - rooms by (party, id). Keys are "party\0id": the NUL cannot
 * occur in a party name, so two different pairs never share a key. */
#include "registry.h"
#include "log.h"

#include <stdlib.h>
#include <string.h>

static size_t make_key(char *out, size_t cap, const char *pname, const char *id)
{
    size_t pl = strlen(pname), il = strlen(id);
    if (pl + 1 + il > cap) return 0;
    memcpy(out, pname, pl);
    out[pl] = 0;
    memcpy(out + pl + 1, id, il);
    return pl + 1 + il;
}

room *registry_resolve(worker *w, const party *p, const char *id, char **err)
{
    char key[1024];
    size_t klen = make_key(key, sizeof key, p->name, id);
    if (!klen) {
        *err = xstrdup("room id too long");
        return NULL;
    }
    room *r = dict_get(&w->rooms, key, klen);
    if (r) return r;
    r = room_create(w, p, id, err);
    if (!r) return NULL;
    dict_upsert(&w->rooms, key, klen, NULL)->val = r;
    room_start(r);
    return r;
}

void registry_evict(worker *w, room *r, int code, const char *reason)
{
    char key[1024];
    size_t klen = make_key(key, sizeof key, r->party->name, r->id);
    if (dict_get(&w->rooms, key, klen) != r) return;
    dict_remove(&w->rooms, key, klen);
    log_debug("room %s/%s unloaded (%s)", r->party->name, r->id, reason);
    /* Draining: its connections close (their onClose still runs); the room
     * is freed when the last reference (a connection) goes. */
    r->state = ROOM_DRAINING;
    room_close_all(r, code, reason);
    room_unref(r);
}

void registry_sweep(worker *w)
{
    uint64_t now = uv_now(w->loop), idle = w->cfg->idle_timeout_ms;
    room **victims = NULL;
    size_t n = 0;
    dict_entry *e;
    for (size_t i = 0; (e = dict_next(&w->rooms, &i));) {
        room *r = e->val;
        if (room_idle(r) && now - r->last_active >= idle) {
            victims = xrealloc(victims, (n + 1) * sizeof *victims);
            victims[n++] = r;
        }
    }
    for (size_t i = 0; i < n; i++) registry_evict(w, victims[i], 1001, "idle");
    free(victims);
}

static void drop(void *v)
{
    room *r = v;
    room_shutdown(r);
    room_unref(r);
}

void registry_clear(worker *w) { dict_free(&w->rooms, drop); }


bool registry_quiet(worker *w)
{
    if (w->runq_head) return false;
    dict_entry *e;
    for (size_t i = 0; (e = dict_next(&w->rooms, &i));) {
        room *r = e->val;
        if (r->q_head || r->suspended || r->running || r->held_head || r->commit_inflight) return false;
    }
    return true;
}
