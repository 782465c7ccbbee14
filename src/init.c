/* init.c - `luaparty init [DIR]`: a starter project (partykit.json, a party
 * whose comments show every callback, a page that talks to it, and a test
 * that `luaparty test` runs), so a newcomer has something running in two
 * commands. Never overwrites files. */
#include "init.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char partykit_json[] =
    "{\n"
    "  \"name\": \"my-party\",\n"
    "  \"main\": \"parties/main.lua\",\n"
    "  \"serve\": \"public\"\n"
    "}\n";

static const char main_lua[] =
    "-- parties/main.lua: the main party. Each room (/parties/main/<room>) gets\n"
    "-- its own instance: `self`, with `self.room`. Every callback is optional.\n"
    "local json = require \"cjson\"\n"
    "local luaparty = require \"luaparty\"\n"
    "local Response = luaparty.Response\n"
    "\n"
    "local Party = {}\n"
    "\n"
    "-- Runs once when the room starts, before anything else reaches it.\n"
    "function Party:onStart()\n"
    "  self.count = self.room.storage:get(\"count\") or 0\n"
    "end\n"
    "\n"
    "-- A WebSocket joined. ctx.request is the upgrade request.\n"
    "function Party:onConnect(conn, ctx)\n"
    "  conn:send(json.encode({ type = \"welcome\", id = conn.id, count = self.count }))\n"
    "end\n"
    "\n"
    "-- A message from a connection: a string (text) or a Binary (binary).\n"
    "function Party:onMessage(message, sender)\n"
    "  if luaparty.isBinary(message) then\n"
    "    -- bytes go on as a binary frame: a text frame (and so JSON) must be UTF-8\n"
    "    self.room:broadcast(message, { sender.id })\n"
    "    return\n"
    "  end\n"
    "  self.count = self.count + 1\n"
    "  self.room.storage:put(\"count\", self.count) -- durable before anyone hears of it\n"
    "  self.room:broadcast(json.encode({ type = \"message\", from = sender.id, text = message,\n"
    "                                    count = self.count }))\n"
    "end\n"
    "\n"
    "-- A connection closed (for any reason).\n"
    "function Party:onClose(conn)\n"
    "  self.room:broadcast(json.encode({ type = \"left\", id = conn.id }))\n"
    "end\n"
    "\n"
    "-- A connection failed (protocol error, message too big, ...); onClose follows.\n"
    "function Party:onError(conn, err)\n"
    "  print(\"connection \" .. conn.id .. \" failed: \" .. err)\n"
    "end\n"
    "\n"
    "-- Plain HTTP to /parties/main/<room>.\n"
    "function Party:onRequest(req)\n"
    "  return Response.json({ room = self.room.id, count = self.count })\n"
    "end\n"
    "\n"
    "-- Runs after `luaparty dev` reloaded this file (connections stay open).\n"
    "function Party:onReload()\n"
    "  print(\"reloaded room \" .. self.room.id)\n"
    "end\n"
    "\n"
    "return Party\n";

static const char main_test_lua[] =
    "-- tests/main_test.lua: run with `luaparty test`. Each test gets a fresh server\n"
    "-- in-process (empty storage, a virtual clock), so tests take milliseconds.\n"
    "local t = require \"luaparty.test\"\n"
    "\n"
    "t.test(\"a new connection is welcomed\", function()\n"
    "  local alice = t.connect(\"main\", \"lobby\", { id = \"alice\" })\n"
    "  t.eq(alice:receiveJson(), { type = \"welcome\", id = \"alice\", count = 0 })\n"
    "end)\n"
    "\n"
    "t.test(\"messages reach everyone in the room and are counted\", function()\n"
    "  local alice = t.connect(\"main\", \"lobby\", { id = \"alice\" })\n"
    "  local bob = t.connect(\"main\", \"lobby\", { id = \"bob\" })\n"
    "  alice:receive(); bob:receive() -- the welcomes\n"
    "  alice:send(\"hi\")\n"
    "  t.eq(bob:receiveJson(), { type = \"message\", from = \"alice\", text = \"hi\", count = 1 })\n"
    "  t.eq(t.fetch(\"main\", \"lobby\"):json(), { room = \"lobby\", count = 1 })\n"
    "end)\n"
    "\n"
    "t.test(\"the count survives a restart of the room\", function()\n"
    "  local alice = t.connect(\"main\", \"lobby\")\n"
    "  alice:send(\"hi\")\n"
    "  t.restart(\"main\", \"lobby\")\n"
    "  t.eq(t.storage(\"main\", \"lobby\"):get(\"count\"), 1)\n"
    "  t.eq(t.fetch(\"main\", \"lobby\"):json().count, 1)\n"
    "end)\n";

static const char index_html[] =
    "<!doctype html>\n"
    "<html lang=\"en\">\n"
    "<head><meta charset=\"utf-8\"><title>my party</title>\n"
    "<style>body{font:16px system-ui,sans-serif;max-width:40em;margin:2em auto}"
    "#log{border:1px solid #ccc;padding:.5em;min-height:10em;white-space:pre-wrap}</style></head>\n"
    "<body>\n"
    "<h1>my party</h1>\n"
    "<p>Room <input id=\"room\" value=\"lobby\"> <button id=\"join\">join</button></p>\n"
    "<p><input id=\"text\" placeholder=\"say something\"> <button id=\"send\">send</button></p>\n"
    "<div id=\"log\"></div>\n"
    "<script>\n"
    "let ws;\n"
    "const log = (line) => { document.getElementById('log').textContent += line + '\\n'; };\n"
    "function join() {\n"
    "  if (ws) ws.close();\n"
    "  const room = encodeURIComponent(document.getElementById('room').value);\n"
    "  // wss:// on an https:// page (luaparty serve --tls-cert), ws:// otherwise\n"
    "  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';\n"
    "  ws = new WebSocket(`${scheme}://${location.host}/parties/main/${room}`);\n"
    "  ws.binaryType = 'arraybuffer';\n"
    "  ws.onmessage = (e) => log(typeof e.data === 'string' ? e.data : `(${e.data.byteLength} bytes, binary)`);\n"
    "  ws.onclose = (e) => log(`closed (${e.code})`);\n"
    "}\n"
    "document.getElementById('join').onclick = join;\n"
    "document.getElementById('send').onclick = () => ws && ws.send(document.getElementById('text').value);\n"
    "join();\n"
    "</script>\n"
    "</body>\n"
    "</html>\n";

static int write_new(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wx"); /* x: never overwrite */
    if (!f) {
        fprintf(stderr, "luaparty init: %s: %s\n", path, errno == EEXIST ? "already exists (nothing was overwritten)"
                                                                          : strerror(errno));
        return -1;
    }
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

static int make_dir(const char *dir, const char *sub)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", dir, sub ? "/" : "", sub ? sub : "");
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "luaparty init: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int init_project(const char *dir)
{
    if (make_dir(dir, NULL) || make_dir(dir, "parties") || make_dir(dir, "public") || make_dir(dir, "tests"))
        return 1;
    if (write_new(dir, "partykit.json", partykit_json) || write_new(dir, "parties/main.lua", main_lua) ||
        write_new(dir, "public/index.html", index_html) || write_new(dir, "tests/main_test.lua", main_test_lua))
        return 1;
    printf("Created a party in %s. Run it:\n\n  luaparty dev %s\n\nthen open http://127.0.0.1:1999/ in two "
           "browser tabs.\nEdit %s/parties/main.lua: the running rooms pick up each save.\n"
           "Test it (tests/main_test.lua):\n\n  luaparty test %s\n",
           dir, dir, dir, dir);
    return 0;
}
