/* test_registry.c - the rooms of a worker (src/registry.c) on a real
 * in-process worker (fixture.c): a room starts once and is found again, a
 * party that fails to load gives its Lua error, registry_each and
 * registry_evict, placement over workers (registry_owner), and the idle
 * sweep that unloads rooms nobody uses. */
#include "unit.h"

#include "fixture.h"
#include "registry.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

static const char project_json[] = "{\"name\": \"reg\", \"main\": \"parties/main.lua\",\n"
                                   " \"parties\": {\"bad\": \"parties/bad.lua\", \"other\": \"parties/main.lua\"}}\n";

/* onStart counts its runs in the instance (self.starts: one Lua state per
 * room) and in storage (survives the room); requests report both and an
 * in-memory mark a fresh room cannot have. */
static const char main_lua[] =
    "local P = {}\n"
    "function P:onStart()\n"
    "  self.starts = (self.starts or 0) + 1\n"
    "  local s = self.room.storage\n"
    "  s:put('starts', tostring((tonumber(s:get('starts')) or 0) + 1))\n"
    "end\n"
    "function P:onRequest(req)\n"
    "  local path = req.url:match('^%a+://[^/]+([^?]*)')\n"
    "  if path == '/mark' then self.mark = req:text() return 'marked' end\n"
    "  return 'starts=' .. tostring(self.starts) .. ' mark=' .. tostring(self.mark) .. ' id=' .. self.room.id\n"
    "end\n"
    "function P:onClose(conn) self.room.storage:put('closed', conn.id) end\n"
    "return P\n";

/* fails while loading, at line 3 */
static const char bad_lua[] = "local P = {}\n"
                              "-- the next line throws at load time\n"
                              "error('broken at load')\n"
                              "return P\n";

static void start(fixture *f, bool services, uint64_t idle_ms)
{
    fx_project(f, "registry", project_json);
    fx_file(f, "parties/main.lua", main_lua);
    fx_file(f, "parties/bad.lua", bad_lua);
    fx_load(f);
    if (idle_ms) f->cfg.idle_timeout_ms = idle_ms;
    fx_start(f, services);
}

static room *resolve_ok(fixture *f, const char *party_name, const char *id)
{
    char *err = NULL;
    room *r = registry_resolve(&f->w, fx_party(f, party_name), id, &err);
    ASSERT_MSG(r != NULL, "registry_resolve %s/%s: %s", party_name, id, err ? err : "?");
    ASSERT_NULL(err);
    return r;
}

/* GET target from room r; returns the body (static). */
static const char *get(fixture *f, room *r, const char *target, const char *body)
{
    static fx_exchange x;
    fx_exchange_init(&x, f);
    room_request(r, fx_request(body ? "POST" : "GET", target, body), &x.ex);
    ASSERT_MSG(fx_run(f, fx_answered, &x, 2000), "no answer to %s within 2 s", target);
    ASSERT_EQ(x.responded, 1);
    ASSERT_EQ(x.failed, 0);
    ASSERT_EQ(x.status, 200);
    return x.body;
}

static bool has_room(fixture *f, const char *party_name, const char *id)
{
    char key[256];
    size_t klen = room_key(key, sizeof key, party_name, id);
    ASSERT(klen > 0);
    return dict_get(&f->w.rooms, key, klen) != NULL;
}

TEST(registry_resolve_starts_a_room_once)
{
    fixture f;
    start(&f, false, 0);
    room *r = resolve_ok(&f, "main", "r1");
    ASSERT(r->party == fx_party(&f, "main"));
    ASSERT_STR_EQ(r->id, "r1");
    ASSERT_EQ(r->state, ROOM_ACTIVE);
    ASSERT(!r->starting); /* onStart ran (nothing held it back) */
    ASSERT(resolve_ok(&f, "main", "r1") == r);
    ASSERT(resolve_ok(&f, "main", "r1") == r);
    ASSERT_EQ(f.w.rooms.count, 1);
    ASSERT_STR_EQ(get(&f, r, "/", NULL), "starts=1 mark=nil id=r1");
    ASSERT_STR_EQ(fx_stored_string(f.store, "main", "r1", "starts"), "1");
    /* another id, and the same id in another party, are other rooms */
    room *r2 = resolve_ok(&f, "main", "r2");
    room *o1 = resolve_ok(&f, "other", "r1");
    ASSERT(r2 != r && o1 != r && o1 != r2);
    ASSERT(o1->party == fx_party(&f, "other"));
    ASSERT_EQ(f.w.rooms.count, 3);
    ASSERT_STR_EQ(get(&f, o1, "/", NULL), "starts=1 mark=nil id=r1");
    ASSERT_STR_EQ(get(&f, r, "/", NULL), "starts=1 mark=nil id=r1"); /* still one start */
    ASSERT_STR_EQ(fx_stored_string(f.store, "main", "r1", "starts"), "1");
    ASSERT_STR_EQ(fx_stored_string(f.store, "other", "r1", "starts"), "1");
    fx_stop(&f);
}

TEST(registry_resolve_load_error_gives_null_with_file_line)
{
    fixture f;
    start(&f, false, 0);
    const party *bad = fx_party(&f, "bad");
    for (int i = 0; i < 2; i++) { /* a failed room is not kept: it fails again */
        char *err = NULL;
        room *r = registry_resolve(&f.w, bad, "x", &err);
        ASSERT_NULL(r);
        ASSERT_NOT_NULL(err);
        ASSERT_CONTAINS(err, "parties/bad.lua:3:");
        ASSERT_CONTAINS(err, "broken at load");
        free(err);
        ASSERT(!has_room(&f, "bad", "x"));
        ASSERT_EQ(f.w.rooms.count, 0);
    }
    /* through registry_request the exchange's fail gets the message */
    fx_exchange x;
    fx_exchange_init(&x, &f);
    registry_request(&f.w, bad, "x", fx_request("GET", "/", NULL), &x.ex);
    ASSERT(fx_run(&f, fx_answered, &x, 2000));
    ASSERT_EQ(x.failed, 1);
    ASSERT_EQ(x.responded, 0);
    ASSERT_CONTAINS(x.error, "parties/bad.lua:3: broken at load");
    /* the good party still starts */
    resolve_ok(&f, "main", "fine");
    ASSERT_EQ(f.w.rooms.count, 1);
    fx_stop(&f);
}

typedef struct visits {
    room *seen[16];
    int count[16];
    int n, calls;
} visits;

static void visit(room *r, void *ud)
{
    visits *v = ud;
    v->calls++;
    for (int i = 0; i < v->n; i++)
        if (v->seen[i] == r) {
            v->count[i]++;
            return;
        }
    ASSERT(v->n < 16);
    v->seen[v->n] = r;
    v->count[v->n++] = 1;
}

static int visits_of(const visits *v, const room *r)
{
    for (int i = 0; i < v->n; i++)
        if (v->seen[i] == r) return v->count[i];
    return 0;
}

TEST(registry_each_visits_every_live_room_once)
{
    fixture f;
    start(&f, false, 0);
    visits v = {0};
    registry_each(&f.w, visit, &v);
    ASSERT_EQ(v.calls, 0); /* no room yet */
    static const char *ids[] = {"a", "b", "c", "d", ""}; /* the lobby too */
    room *rooms[6];
    for (int i = 0; i < 5; i++) rooms[i] = resolve_ok(&f, "main", ids[i]);
    rooms[5] = resolve_ok(&f, "other", "a");
    registry_each(&f.w, visit, &v);
    ASSERT_EQ(v.calls, 6);
    ASSERT_EQ(v.n, 6);
    for (int i = 0; i < 6; i++) ASSERT_EQ(visits_of(&v, rooms[i]), 1);
    /* an evicted room is no longer visited */
    registry_evict(&f.w, rooms[1], 1001, "test");
    memset(&v, 0, sizeof v);
    registry_each(&f.w, visit, &v);
    ASSERT_EQ(v.calls, 5);
    for (int i = 0; i < 6; i++)
        if (i != 1) ASSERT_EQ(visits_of(&v, rooms[i]), 1);
    fx_stop(&f);
}

TEST(registry_evict_unloads_and_next_resolve_is_fresh)
{
    fixture f;
    start(&f, false, 0);
    room *r = resolve_ok(&f, "main", "ev");
    ASSERT_STR_EQ(get(&f, r, "/mark", "here"), "marked");
    ASSERT_STR_EQ(get(&f, r, "/", NULL), "starts=1 mark=here id=ev");
    /* a joined connection is closed with the code, and its onClose still runs */
    fx_conn c;
    fx_conn_init(&c, &f, "c1", "http://localhost/parties/main/ev");
    room_connect(r, &c.conn, fx_request("GET", "/parties/main/ev", NULL));
    ASSERT(c.conn.joined);
    registry_evict(&f.w, r, 4001, "evicted by the test");
    ASSERT(!has_room(&f, "main", "ev"));
    ASSERT_EQ(c.closes, 1);
    ASSERT_EQ(c.close_code, 4001);
    ASSERT_STR_EQ(c.close_reason, "evicted by the test");
    ASSERT_EQ(r->state, ROOM_DRAINING); /* alive while its connection is */
    fx_conn_gone(&c, 4001);
    ASSERT(fx_run(&f, NULL, NULL, 20));
    ASSERT(c.destroyed); /* and with it the drained room (ASan: no leak, no use after free) */
    ASSERT_STR_EQ(fx_stored_string(f.store, "main", "ev", "closed"), "c1");
    /* a fresh room: onStart again, no mark */
    room *r2 = resolve_ok(&f, "main", "ev");
    ASSERT_EQ(r2->state, ROOM_ACTIVE);
    ASSERT_STR_EQ(get(&f, r2, "/", NULL), "starts=1 mark=nil id=ev");
    ASSERT_STR_EQ(fx_stored_string(f.store, "main", "ev", "starts"), "2");
    ASSERT(resolve_ok(&f, "main", "ev") == r2); /* and it is the one found from now on */
    fx_stop(&f);
}

TEST(registry_owner_is_deterministic_and_spreads_rooms)
{
    worker ws[4];
    worker *all[4];
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < 4; i++) {
        ws[i].index = i;
        ws[i].nworkers = 4;
        ws[i].all = all;
        all[i] = &ws[i];
    }
    party p = {.name = "main"}, q = {.name = "other"};
    int per[4] = {0}, moved = 0;
    for (int i = 0; i < 1000; i++) {
        char id[32];
        snprintf(id, sizeof id, "room-%d", i);
        worker *o = registry_owner(&ws[0], &p, id);
        ASSERT(o >= &ws[0] && o <= &ws[3]);
        for (int k = 1; k < 4; k++) ASSERT(registry_owner(&ws[k], &p, id) == o); /* whoever asks */
        ASSERT(registry_owner(&ws[0], &p, id) == o);                            /* and again */
        per[o - ws]++;
        if (registry_owner(&ws[0], &q, id) != o) moved++;
    }
    for (int k = 0; k < 4; k++) ASSERT_MSG(per[k] >= 150, "worker %d owns only %d of 1000 rooms", k, per[k]);
    ASSERT_EQ(per[0] + per[1] + per[2] + per[3], 1000);
    ASSERT_MSG(moved > 500, "the party name hardly changes the owner (%d of 1000)", moved);
    /* ids that differ only in a low bit do not pile up on two workers */
    int parity[4] = {0};
    static const char *ab[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p"};
    for (int i = 0; i < 16; i++) parity[registry_owner(&ws[0], &p, ab[i]) - ws]++;
    int used = 0;
    for (int k = 0; k < 4; k++) used += parity[k] > 0;
    ASSERT_MSG(used >= 3, "16 one-letter ids land on %d workers", used);
    /* two workers: FNV-1a's low bit alone is the parity of the bytes' low
     * bits, so without the final mix "a", "c", "e", ... would all land on
     * one worker */
    for (int i = 0; i < 4; i++) ws[i].nworkers = 2;
    int two[2] = {0};
    for (char ch = 'a'; ch <= 'y'; ch += 2) {
        char id[2] = {ch, 0};
        worker *o = registry_owner(&ws[0], &p, id);
        ASSERT(o == &ws[0] || o == &ws[1]);
        two[o - ws]++;
    }
    ASSERT_MSG(two[0] && two[1], "13 odd one-letter ids: %d on worker 0, %d on worker 1", two[0], two[1]);
    /* one worker: always itself */
    worker solo;
    memset(&solo, 0, sizeof solo);
    solo.nworkers = 1;
    ASSERT(registry_owner(&solo, &p, "room-1") == &solo);
}

TEST(registry_owner_lobby_belongs_to_the_asker)
{
    worker ws[4];
    worker *all[4];
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < 4; i++) {
        ws[i].nworkers = 4;
        ws[i].all = all;
        all[i] = &ws[i];
    }
    party p = {.name = "main"}, q = {.name = "chat"};
    for (int k = 0; k < 4; k++) {
        ASSERT(registry_owner(&ws[k], &p, "") == &ws[k]);
        ASSERT(registry_owner(&ws[k], &q, "") == &ws[k]);
    }
}

typedef struct gone_check {
    fixture *f;
    const char *id;
} gone_check;

static bool room_gone(void *arg)
{
    gone_check *g = arg;
    return !has_room(g->f, "main", g->id);
}

TEST(registry_unloads_idle_rooms)
{
    fixture f;
    start(&f, true, 60); /* idle after 60 ms; the sweep runs every 20 ms */
    room *idle = resolve_ok(&f, "main", "idle");
    room *busy = resolve_ok(&f, "main", "busy");
    /* The loop's clock is only updated by uv_run: bring it to now, so the
     * request below marks the room active at a time we know. */
    uint64_t t0 = uv_hrtime();
    uv_update_time(&f.loop);
    ASSERT_STR_EQ(get(&f, idle, "/mark", "x"), "marked");
    fx_conn c;
    fx_conn_init(&c, &f, "c1", "http://localhost/parties/main/busy");
    room_connect(busy, &c.conn, fx_request("GET", "/parties/main/busy", NULL));
    ASSERT(!room_idle(busy)); /* a connection keeps it */
    gone_check g = {&f, "idle"};
    ASSERT_MSG(fx_run(&f, room_gone, &g, 3000), "the idle room was not unloaded within 3 s");
    /* not before its 60 ms (less the loop clock's 1 ms steps) */
    ASSERT_MSG(uv_hrtime() - t0 >= 50 * 1000000ull, "unloaded after only %llu ms",
               (unsigned long long)((uv_hrtime() - t0) / 1000000));
    ASSERT(has_room(&f, "main", "busy"));
    ASSERT_EQ(c.closes, 0);
    /* longer than the timeout: a room with a connection stays */
    fx_run(&f, NULL, NULL, 150);
    ASSERT(has_room(&f, "main", "busy"));
    ASSERT_EQ(c.closes, 0);
    /* its client leaves: onClose runs, then the room is idle and unloaded */
    fx_conn_gone(&c, 1000);
    g.id = "busy";
    ASSERT_MSG(fx_run(&f, room_gone, &g, 3000), "the room its client left was not unloaded within 3 s");
    ASSERT(c.destroyed);
    ASSERT_STR_EQ(fx_stored_string(f.store, "main", "busy", "closed"), "c1");
    ASSERT_EQ(f.w.rooms.count, 0);
    ASSERT(registry_quiet(&f.w));
    /* the next use starts it again */
    room *again = resolve_ok(&f, "main", "idle");
    ASSERT_STR_EQ(get(&f, again, "/", NULL), "starts=1 mark=nil id=idle");
    ASSERT_STR_EQ(fx_stored_string(f.store, "main", "idle", "starts"), "2");
    fx_stop(&f);
}
