/* test_room.c - a room's inputs, outputs and gates (src/room.c) and the
 * running of its events (src/runner.c), on a real in-process worker
 * (fixture.c) with a fake exchange and fake connections: onRequest's
 * answer, a failing callback (500, the room lives on), the output gate
 * (what a room says after a storage write waits for the commit), the input
 * gate, events in order, onConnect/onMessage/onClose. */
#include "unit.h"

#include "fixture.h"
#include "metrics.h"
#include "registry.h"
#include "ws.h"

#include <stdio.h>
#include <stdlib.h>

static const char project_json[] = "{\"name\": \"rooms\", \"main\": \"parties/main.lua\",\n"
                                   " \"parties\": {\"peer\": \"parties/peer.lua\"}}\n";

/* The party of these tests. The error tests find their lines with line_of. */
static const char main_lua[] =
    "local luaparty = require 'luaparty'\n"
    "local Response = luaparty.Response\n"
    "local P = {}\n"
    "local function peer(self, body)\n"
    "  return self.room.context.parties.peer:get('p1'):fetch('/x', { method = 'POST', body = body }):text()\n"
    "end\n"
    "function P:onStart()\n"
    "  self.seen, self.closed = {}, {}\n"
    "  if self.room.id == 'slowstart' then self.peerSaid = peer(self, 'start') end\n"
    "end\n"
    "local function path(req) return req.url:match('^%a+://[^/]+/parties/[^/]+/[^/?]+([^?]*)') end\n"
    "function P:onRequest(req)\n"
    "  local p = path(req)\n"
    "  if p == '/hello' then\n"
    "    return Response.new('hello ' .. self.room.id .. ' ' .. req.method .. ' ' .. req:text(),\n"
    "                        { status = 201, headers = { ['x-test'] = 'yes' } })\n"
    "  elseif p == '/write' then\n"
    "    self.room.storage:put('k', req:text())\n"
    "    return 'wrote ' .. req:text()\n"
    "  elseif p == '/seq' then\n"
    "    self.seen[#self.seen + 1] = req:text()\n"
    "    return table.concat(self.seen, ',')\n"
    "  elseif p == '/closed' then return table.concat(self.closed, ',')\n"
    "  elseif p == '/ready' then return tostring(self.peerSaid)\n"
    "  elseif p == '/nil' then return nil\n"
    "  elseif p == '/boom' then error('request exploded')\n"
    "  elseif p == '/busy' then\n" /* 20 ms of CPU, ten time slices, in one of these places */
    "    local how, stop = req:text(), os.clock() + 0.02\n"
    "    local function spin() while os.clock() < stop do end end\n"
    "    if how == 'sort' then table.sort({3, 2, 1}, function(a, b) spin() return a < b end)\n"
    "    elseif how == 'write' then self.room.storage:put('w', 1) spin()\n"
    "    elseif how == 'coroutine' then coroutine.wrap(spin)()\n"
    "    elseif how == 'pcall' then pcall(spin)\n"
    "    else spin() end\n"
    "    return how\n"
    "  end\n"
    "  return Response.new('not found', { status = 404 })\n"
    "end\n"
    "function P:onConnect(conn, ctx)\n"
    "  if conn.id == 'bad' then error('connect exploded') end\n"
    "  if conn.id == 'slow' then conn:send('hi slow ' .. peer(self, 'connect')) return end\n"
    "  conn:send('hi ' .. conn.id .. ' ' .. ctx.request.url)\n"
    "end\n"
    "function P:onMessage(msg, sender)\n"
    "  if luaparty.isBinary(msg) then sender:send(msg)\n"
    "  elseif msg == 'write' then\n"
    "    sender:send('before')\n"
    "    self.room.storage:put('m', 'x')\n"
    "    sender:send('after')\n"
    "  elseif msg == 'boom' then error('message exploded')\n"
    "  else sender:send('echo:' .. msg) end\n"
    "end\n"
    "function P:onClose(conn)\n"
    "  self.closed[#self.closed + 1] = conn.id\n"
    "  self.room.storage:put('closed:' .. conn.id, 'yes')\n"
    "end\n"
    "return P\n";

/* Another party, reached by cross-party fetch: a callback that suspends. */
static const char peer_lua[] = "return { onRequest = function(self, req) return 'peer:' .. req:text() end }\n";

/* "parties/main.lua:N: " for the line of main_lua holding needle. */
static const char *line_of(const char *needle)
{
    static char out[64];
    const char *at = strstr(main_lua, needle);
    ASSERT_NOT_NULL(at);
    int line = 1;
    for (const char *p = main_lua; p < at; p++) line += *p == '\n';
    snprintf(out, sizeof out, "parties/main.lua:%d: ", line);
    return out;
}

static void start_project(fixture *f)
{
    fx_project(f, "room", project_json);
    fx_file(f, "parties/main.lua", main_lua);
    fx_file(f, "parties/peer.lua", peer_lua);
    fx_load(f);
    fx_start(f, true); /* registry_start: cross-party calls need w->calls */
}

static room *resolve(fixture *f, const char *id)
{
    char *err = NULL;
    room *r = registry_resolve(&f->w, fx_party(f, "main"), id, &err);
    ASSERT_MSG(r != NULL, "registry_resolve: %s", err ? err : "?");
    return r;
}

static room *start(fixture *f, const char *id)
{
    start_project(f);
    room *r = resolve(f, id);
    ASSERT(!r->starting);
    return r;
}

/* room_request and wait (bounded) for the answer. */
static void request(fixture *f, room *r, fx_exchange *x, const char *method, const char *target, const char *body)
{
    fx_exchange_init(x, f);
    room_request(r, fx_request(method, target, body), &x->ex);
    ASSERT_MSG(fx_run(f, fx_answered, x, 2000), "no answer to %s %s within 2 s", method, target);
    ASSERT_EQ(x->responded, 1);
    ASSERT_EQ(x->failed, 0);
}

static void join(fixture *f, room *r, fx_conn *c, const char *id)
{
    char uri[128];
    snprintf(uri, sizeof uri, "http://localhost/parties/main/%s", r->id);
    fx_conn_init(c, f, id, uri);
    char target[128];
    snprintf(target, sizeof target, "/parties/main/%s?c=%s", r->id, id);
    http_request *up = fx_request("GET", target, NULL);
    up->upgrade = true;
    room_connect(r, &c->conn, up);
}

typedef struct sent_check {
    fx_conn *c;
    int n;
} sent_check;

static bool has_sent(void *arg)
{
    sent_check *s = arg;
    return s->c->nsent >= s->n;
}

static void wait_sent(fixture *f, fx_conn *c, int n)
{
    sent_check s = {c, n};
    ASSERT_MSG(fx_run(f, has_sent, &s, 2000), "%d of %d messages within 2 s", c->nsent, n);
}

static bool is_destroyed(void *arg) { return ((fx_conn *)arg)->destroyed; }

static void leave(fixture *f, fx_conn *c)
{
    fx_conn_gone(c, 1000);
    ASSERT_MSG(fx_run(f, is_destroyed, c, 2000), "connection %s not released within 2 s", c->conn.id);
}

/* Callback errors counted for /metrics, all parties together. */
static uint64_t callback_errors(const fixture *f)
{
    uint64_t n = 0;
    for (int i = 0; i < METRICS_PARTIES; i++) n += f->w.stats.callback_errors[i];
    return n;
}

TEST(room_request_answers_with_onrequest_response)
{
    fixture f;
    room *r = start(&f, "r1");
    fx_exchange x;
    fx_exchange_init(&x, &f);
    x.want_header = "x-test";
    room_request(r, fx_request("POST", "/parties/main/r1/hello", "data"), &x.ex);
    ASSERT(fx_run(&f, fx_answered, &x, 2000));
    ASSERT_EQ(x.responded, 1);
    ASSERT_EQ(x.status, 201);
    ASSERT_STR_EQ(x.body, "hello r1 POST data");
    ASSERT_STR_EQ(x.header, "yes");
    request(&f, r, &x, "GET", "/parties/main/r1/seq", "a"); /* a string: 200 text */
    ASSERT_EQ(x.status, 200);
    ASSERT_STR_EQ(x.body, "a");
    request(&f, r, &x, "GET", "/parties/main/r1/nil", NULL); /* nil: 204 */
    ASSERT_EQ(x.status, 204);
    ASSERT_EQ(x.body_len, 0);
    request(&f, r, &x, "GET", "/parties/main/r1/nope", NULL);
    ASSERT_EQ(x.status, 404);
    ASSERT_STR_EQ(x.body, "not found");
    ASSERT_EQ(callback_errors(&f), 0);
    ASSERT(registry_quiet(&f.w));
    fx_stop(&f);
}

TEST(room_request_error_gives_500_and_room_lives_on)
{
    fixture f;
    room *r = start(&f, "r1");
    fx_exchange x;
    request(&f, r, &x, "GET", "/parties/main/r1/seq", "before");
    ASSERT_STR_EQ(x.body, "before");
    request(&f, r, &x, "GET", "/parties/main/r1/boom", NULL);
    ASSERT_EQ(x.status, 500);
    ASSERT_STR_EQ(x.body, "Internal Server Error"); /* no internals outside dev */
    ASSERT_EQ(callback_errors(&f), 1);
    /* the same room (its state kept) answers the next request */
    char *err = NULL;
    ASSERT(registry_resolve(&f.w, fx_party(&f, "main"), "r1", &err) == r);
    request(&f, r, &x, "GET", "/parties/main/r1/seq", "after");
    ASSERT_EQ(x.status, 200);
    ASSERT_STR_EQ(x.body, "before,after");
    /* in dev the 500 carries the Lua error with file:line */
    f.cfg.dev = true;
    request(&f, r, &x, "GET", "/parties/main/r1/boom", NULL);
    ASSERT_EQ(x.status, 500);
    ASSERT_CONTAINS(x.body, line_of("request exploded"));
    ASSERT_CONTAINS(x.body, "request exploded");
    ASSERT_EQ(callback_errors(&f), 2);
    ASSERT_EQ(r->state, ROOM_ACTIVE);
    ASSERT_NULL(r->tasks); /* the failed task is gone */
    fx_stop(&f);
}

/* The handler writes, then returns: its response must wait for the commit.
 * When it arrives the batch is closed and a second connection to the
 * database already reads the value; a response released early would find
 * the batch open and the value invisible there. */
TEST(room_output_gate_releases_response_after_commit)
{
    fixture f;
    room *r = start(&f, "gate");
    /* the probe itself: the second connection does not see an open batch */
    const char *err = NULL;
    ASSERT(storage_put(f.store, "main", "gate", "probe", 5, "s\001p", 3, &err) == 0);
    ASSERT_NULL(fx_stored_string(f.peek, "main", "gate", "probe"));
    storage_commit(f.store, NULL, NULL);
    ASSERT_STR_EQ(fx_stored_string(f.peek, "main", "gate", "probe"), "p");
    fx_exchange x;
    fx_exchange_init(&x, &f);
    x.peek_key = "k";
    x.peek_party = "main";
    x.peek_room = "gate";
    room_request(r, fx_request("POST", "/parties/main/gate/write", "v1"), &x.ex);
    ASSERT(fx_run(&f, fx_answered, &x, 2000));
    ASSERT_EQ(x.responded, 1);
    ASSERT_EQ(x.status, 200);
    ASSERT_STR_EQ(x.body, "wrote v1");
    ASSERT(!x.batch_open);
    ASSERT(x.peek_found);
    ASSERT_STR_EQ(x.peeked, "v1");
    ASSERT_NULL(r->held_head);
    ASSERT(!r->commit_inflight && !r->dirty);
    ASSERT_EQ(f.w.stats.commits, 1);
    ASSERT_STR_EQ(fx_stored_string(f.store, "main", "gate", "k"), "v1");
    fx_stop(&f);
}

/* Sends before a write go out at once; after it they wait for the commit. */
TEST(room_output_gate_holds_sends_after_a_write)
{
    fixture f;
    room *r = start(&f, "gate");
    fx_conn c;
    join(&f, r, &c, "c1");
    wait_sent(&f, &c, 1);
    c.peek_key = "m";
    c.peek_party = "main";
    c.peek_room = "gate";
    room_message_bytes(&c.conn, WS_TEXT, "write", 5);
    wait_sent(&f, &c, 3);
    ASSERT_STR_EQ(fx_sent(&c, 1), "before");
    ASSERT_STR_EQ(fx_sent(&c, 2), "after");
    ASSERT(!c.sent_peek_found[1]); /* nothing written yet */
    ASSERT(c.sent_peek_found[2]);  /* held until the write was committed */
    ASSERT(!c.sent_batch_open[2]);
    ASSERT_NULL(r->held_head);
    leave(&f, &c);
    fx_stop(&f);
}

/* The gates themselves, driven from C: outputs made while the room is dirty
 * are held, in order, until room_commit's commit answers; events queued
 * while a commit is in flight wait for it (input gate). */
TEST(room_gates_hold_outputs_and_events_until_the_commit)
{
    fixture f;
    room *r = start(&f, "g");
    fx_conn c;
    join(&f, r, &c, "c1");
    wait_sent(&f, &c, 1);
    fx_exchange x;
    fx_exchange_init(&x, &f);
    r->dirty = true; /* as a storage write in the step that runs now */
    chunk *msg = ws_msg_new(WS_TEXT, "held", 4);
    room_output_send(r, &c.conn, msg);
    chunk_unref(msg);
    room_output_respond(r, &x.ex, http_response_new(200, "text/plain", "late", 4));
    room_output_close(r, &c.conn, 4000, "bye", 3);
    ASSERT_EQ(c.nsent, 1); /* only the greeting */
    ASSERT_EQ(x.responded, 0);
    ASSERT_EQ(c.closes, 0);
    ASSERT_NOT_NULL(r->held_head);
    room_commit(r);
    ASSERT(!r->dirty && !r->commit_inflight);
    ASSERT_NULL(r->held_head);
    ASSERT_EQ(c.nsent, 2);
    ASSERT_STR_EQ(fx_sent(&c, 1), "held");
    ASSERT_EQ(x.responded, 1);
    ASSERT_STR_EQ(x.body, "late");
    ASSERT_EQ(c.closes, 1);
    ASSERT_EQ(c.close_code, 4000);
    ASSERT_STR_EQ(c.close_reason, "bye");
    ASSERT(c.sent_seq[1] < x.seq && x.seq < c.close_seq); /* in the order they were made */

    /* input gate: a request that arrives while a commit is in flight waits */
    fx_exchange y;
    fx_exchange_init(&y, &f);
    r->commit_inflight = true;
    room_request(r, fx_request("GET", "/parties/main/g/seq", "gated"), &y.ex);
    fx_run(&f, NULL, NULL, 20);
    ASSERT_EQ(y.responded, 0);
    ASSERT_NOT_NULL(r->q_head);
    /* the commit answers (storage_commit with no batch answers at once) */
    r->commit_inflight = false;
    r->dirty = true;
    room_commit(r);
    ASSERT(fx_run(&f, fx_answered, &y, 2000));
    ASSERT_EQ(y.status, 200);
    ASSERT_STR_EQ(y.body, "gated");
    ASSERT_NULL(r->q_head);
    leave(&f, &c);
    fx_stop(&f);
}

TEST(room_events_run_in_order)
{
    fixture f;
    room *r = start(&f, "ord");
    fx_exchange x[3];
    static const char *bodies[] = {"a", "b", "c"};
    static const char *want[] = {"a", "a,b", "a,b,c"};
    /* as if Lua code were running (one room calling another): the events
     * are queued for the next loop turn instead of running now */
    f.w.lua_depth++;
    for (int i = 0; i < 3; i++) {
        fx_exchange_init(&x[i], &f);
        room_request(r, fx_request("POST", "/parties/main/ord/seq", bodies[i]), &x[i].ex);
    }
    fx_conn c;
    join(&f, r, &c, "c1");
    char bytes[] = "first";
    room_message_bytes(&c.conn, WS_TEXT, bytes, 5);
    memcpy(bytes, "XXXXX", 5); /* the room had to copy them: it could not run now */
    f.w.lua_depth--;
    for (int i = 0; i < 3; i++) ASSERT_EQ(x[i].responded, 0);
    ASSERT_EQ(c.nsent, 0);
    ASSERT_NOT_NULL(r->q_head);
    ASSERT(r->later.queued);
    for (int i = 0; i < 3; i++) ASSERT(fx_run(&f, fx_answered, &x[i], 2000));
    wait_sent(&f, &c, 2);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(x[i].status, 200);
        ASSERT_STR_EQ(x[i].body, want[i]);
        if (i) ASSERT(x[i - 1].seq < x[i].seq);
    }
    /* onConnect before onMessage, both after the requests queued first */
    ASSERT_CONTAINS(fx_sent(&c, 0), "hi c1 ");
    ASSERT_STR_EQ(fx_sent(&c, 1), "echo:first");
    ASSERT(x[2].seq < c.sent_seq[0]);
    ASSERT_NULL(r->q_head);
    leave(&f, &c);
    fx_stop(&f);
}

TEST(room_connect_message_and_close_reach_the_party)
{
    fixture f;
    room *r = start(&f, "chat");
    fx_conn a, b;
    join(&f, r, &a, "ca");
    wait_sent(&f, &a, 1);
    ASSERT_STR_EQ(fx_sent(&a, 0), "hi ca http://localhost/parties/main/chat?c=ca");
    ASSERT_EQ(a.sent_opcode[0], WS_TEXT);
    ASSERT(a.conn.joined);
    ASSERT(a.conn.room == r);
    ASSERT_EQ(r->nconns, 1);
    join(&f, r, &b, "cb");
    wait_sent(&f, &b, 1);
    ASSERT_EQ(r->nconns, 2);
    ASSERT_EQ(a.nsent, 1); /* b's greeting went to b only */

    room_message_bytes(&a.conn, WS_TEXT, "ping", 4);
    wait_sent(&f, &a, 2);
    ASSERT_STR_EQ(fx_sent(&a, 1), "echo:ping");
    ASSERT_EQ(a.sent_opcode[1], WS_TEXT);
    static const char bin[] = {0, 1, (char)0xff};
    room_message_bytes(&b.conn, WS_BINARY, bin, 3);
    wait_sent(&f, &b, 2);
    ASSERT_EQ(b.sent_opcode[1], WS_BINARY);
    ASSERT_BYTES_EQ(b.sent[1], b.sent_len[1], bin, 3);
    ASSERT_EQ(a.nsent, 2);

    /* an error in onMessage: logged, counted, the room and connection live on */
    room_message_bytes(&a.conn, WS_TEXT, "boom", 4);
    fx_run(&f, NULL, NULL, 10);
    ASSERT_EQ(callback_errors(&f), 1);
    ASSERT_EQ(a.closes, 0);
    room_message_bytes(&a.conn, WS_TEXT, "again", 5);
    wait_sent(&f, &a, 3);
    ASSERT_STR_EQ(fx_sent(&a, 2), "echo:again");

    /* a leaves: onClose runs (in memory and in storage), the room lets go */
    leave(&f, &a);
    ASSERT_EQ(r->nconns, 1);
    ASSERT_STR_EQ(fx_stored_string(f.store, "main", "chat", "closed:ca"), "yes");
    ASSERT_NULL(fx_stored_string(f.store, "main", "chat", "closed:cb"));
    fx_exchange x;
    request(&f, r, &x, "GET", "/parties/main/chat/closed", NULL);
    ASSERT_STR_EQ(x.body, "ca");
    leave(&f, &b);
    ASSERT_EQ(r->nconns, 0);
    ASSERT_EQ(r->attached, 0);
    request(&f, r, &x, "GET", "/parties/main/chat/closed", NULL);
    ASSERT_STR_EQ(x.body, "ca,cb");
    ASSERT(room_idle(r));
    fx_stop(&f);
}

/* As PartyKit: a failing onConnect accepts, then closes with 1011 and the
 * error, so the client sees what went wrong. */
TEST(room_connect_error_closes_with_1011)
{
    fixture f;
    room *r = start(&f, "r");
    fx_conn c;
    join(&f, r, &c, "bad");
    fx_run(&f, NULL, NULL, 10);
    ASSERT_EQ(c.closes, 1);
    ASSERT_EQ(c.close_code, 1011);
    ASSERT_CONTAINS(c.close_reason, line_of("connect exploded"));
    ASSERT_CONTAINS(c.close_reason, "connect exploded");
    ASSERT_EQ(c.nsent, 0);
    ASSERT_EQ(callback_errors(&f), 1);
    leave(&f, &c);
    fx_exchange x;
    request(&f, r, &x, "GET", "/parties/main/r/closed", NULL);
    ASSERT_STR_EQ(x.body, "bad"); /* it joined, so onClose ran */
    fx_stop(&f);
}

/* onConnect suspends (a cross-party fetch): the room takes other events
 * meanwhile, but the connection's own message waits until its onConnect
 * has finished. */
TEST(room_suspended_callback_holds_its_connection_only)
{
    fixture f;
    room *r = start(&f, "susp");
    fx_conn c;
    join(&f, r, &c, "slow");
    ASSERT_EQ(r->suspended, 1); /* waiting for the peer's answer */
    ASSERT(c.conn.busy);
    ASSERT_EQ(c.nsent, 0);
    room_message_bytes(&c.conn, WS_TEXT, "m1", 2);
    /* another event of the room runs now, ahead of the suspended one */
    fx_exchange x;
    fx_exchange_init(&x, &f);
    room_request(r, fx_request("POST", "/parties/main/susp/seq", "other"), &x.ex);
    ASSERT_EQ(x.responded, 1);
    ASSERT_STR_EQ(x.body, "other");
    ASSERT_EQ(c.nsent, 0); /* the message did not overtake onConnect */
    ASSERT_NOT_NULL(r->q_head);
    wait_sent(&f, &c, 2);
    ASSERT_STR_EQ(fx_sent(&c, 0), "hi slow peer:connect");
    ASSERT_STR_EQ(fx_sent(&c, 1), "echo:m1");
    ASSERT_EQ(r->suspended, 0);
    ASSERT(!c.conn.busy);
    leave(&f, &c);
    fx_stop(&f);
}

/* Nothing but onStart runs before onStart finished, even when it suspends. */
TEST(room_events_wait_for_a_suspended_onstart)
{
    fixture f;
    start_project(&f);
    room *r = resolve(&f, "slowstart");
    ASSERT(r->starting);
    ASSERT_EQ(r->suspended, 1);
    fx_exchange x;
    fx_exchange_init(&x, &f);
    room_request(r, fx_request("GET", "/parties/main/slowstart/ready", NULL), &x.ex);
    ASSERT_EQ(x.responded, 0);
    ASSERT(fx_run(&f, fx_answered, &x, 2000));
    ASSERT_EQ(x.status, 200);
    ASSERT_STR_EQ(x.body, "peer:start"); /* onStart had finished */
    ASSERT(!r->starting);
    fx_stop(&f);
}

/* A step that runs past its time slice pauses (runner.c, sandbox.c) and is
 * answered on a later turn; where a yield cannot go (a C function such as
 * table.sort between, a coroutine of the party's) or must not (a storage
 * write pending) it runs to its end in one go. */
TEST(room_long_step_pauses_only_where_it_may)
{
    fixture f;
    room *r = start(&f, "busy");
    static const struct {
        const char *how;
        bool pauses;
    } cases[] = {{"plain", true}, {"pcall", true}, {"sort", false}, {"write", false}, {"coroutine", false}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fx_exchange x;
        fx_exchange_init(&x, &f);
        room_request(r, fx_request("POST", "/parties/main/busy/busy", cases[i].how), &x.ex); /* runs at once */
        ASSERT_MSG((r->preempted != NULL) == cases[i].pauses, "%s: %s", cases[i].how,
                   r->preempted ? "paused" : "ran to its end");
        ASSERT_EQ(x.responded, cases[i].pauses ? 0 : 1);
        /* while it is paused nothing else of the room runs, even what needs no connection */
        fx_exchange y;
        fx_exchange_init(&y, &f);
        room_request(r, fx_request("GET", "/parties/main/busy/seq", cases[i].how), &y.ex);
        ASSERT_EQ(y.responded, cases[i].pauses ? 0 : 1);
        ASSERT_MSG(fx_run(&f, fx_answered, &y, 2000), "%s: no answer to the next request", cases[i].how);
        ASSERT_MSG(x.responded == 1 && x.seq < y.seq, "%s: answered out of order", cases[i].how);
        ASSERT_STR_EQ(x.body, cases[i].how);
        ASSERT_NULL(r->preempted);
    }
    ASSERT_EQ(callback_errors(&f), 0);
    fx_stop(&f);
}
