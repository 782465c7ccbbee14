-- luaparty.test: what a test file (tests/*_test.lua) writes against.
--
--   local t = require "luaparty.test"
--   t.test("greets", function()
--     local a = t.connect("main", "lobby", { id = "alice" })
--     t.eq(a:receiveJson().type, "welcome")
--   end)
--
-- `luaparty test` (src/testrun.c) runs each file in its own Lua state and
-- every test on a fresh in-process server: the project's real rooms,
-- storage, hooks and sandbox, reached through the server's own routing,
-- without a network and on a virtual clock. This module is the API on top
-- of the C side (luaparty.testcore); it also runs the tests and prints one
-- line per test (t._run).
local core = require "luaparty.testcore"
local cjson = require "cjson"

local t = {}
local tests, before_each, after_each = {}, {}, {}

------------------------------------------------------------------ failures
-- Failures are tables, so the runner tells them from errors in the test's
-- own code (those get a traceback). PartyError: code of the project failed
-- while a t.* call ran (t.error can expect one).
local Failure = { __tostring = function(f) return f.msg end }
local PartyError = { __tostring = function(f) return f.msg end }

local HERE = debug.getinfo(1, "S").short_src

-- "file:line: " of the innermost frame outside this module: the line of
-- the test file that called the t.* function (or of its own helper).
local function at()
  for level = 2, 64 do
    local info = debug.getinfo(level, "Sl")
    if not info then break end
    if info.short_src ~= HERE and info.what ~= "C" and (info.currentline or 0) > 0 then
      return info.short_src .. ":" .. info.currentline .. ": "
    end
  end
  return ""
end

-- an assertion failed: the test fails at the caller's line
local function fail(msg) error(setmetatable({ msg = at() .. msg }, Failure), 0) end
-- a call could not do what it was asked (t.error can expect it)
local function raise(msg) error(at() .. msg, 0) end

-- core.f(...), its error (a bad argument, a closed connection, a value
-- storage refuses) raised at the test's line
local function pass(ok, ...)
  if not ok then raise(tostring((...))) end
  return ...
end
local function call(f, ...) return pass(pcall(f, ...)) end

local collecting -- t.partyErrors: party errors go here instead of failing the test

-- After every call that may have run party code: its errors fail the test
-- at the caller's line (or are collected by t.partyErrors).
local function check()
  local errs = core.errors()
  if not errs then return end
  if collecting then
    for _, e in ipairs(errs) do collecting[#collecting + 1] = e end
    return
  end
  error(setmetatable({ msg = at() .. "error in party code: " .. table.concat(errs, "\n") }, PartyError), 0)
end

------------------------------------------------------------------ showing values
local function quote(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == "\n" then return "\\n" elseif c == "\t" then return "\\t" elseif c == "\r" then return "\\r"
    elseif c == '"' or c == "\\" then return "\\" .. c end
    return string.format("\\%03d", c:byte())
  end) .. '"'
end

local function key_text(k)
  if type(k) == "string" and k:match("^[%a_][%w_]*$") then return k end
  if type(k) == "string" then return "[" .. quote(k) .. "]" end
  return "[" .. tostring(k) .. "]"
end

local function sorted_keys(tab)
  local n, keys = #tab, {}
  for k in pairs(tab) do
    if not (type(k) == "number" and k >= 1 and k <= n and k % 1 == 0) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    if type(a) == type(b) and (type(a) == "string" or type(a) == "number") then return a < b end
    return type(a) < type(b)
  end)
  return n, keys
end

local function show(v, depth)
  depth = depth or 0
  local ty = type(v)
  if ty == "string" then return quote(v) end
  if core.isBinary(v) then return "binary(" .. quote(tostring(v)) .. ")" end
  if ty ~= "table" then return tostring(v) end
  if depth > 4 then return "{...}" end
  local n, keys = sorted_keys(v)
  local parts = {}
  for i = 1, n do parts[#parts + 1] = show(v[i], depth + 1) end
  for _, k in ipairs(keys) do parts[#parts + 1] = key_text(k) .. " = " .. show(v[k], depth + 1) end
  local s = "{" .. table.concat(parts, ", ") .. "}"
  if #s > 600 then s = s:sub(1, 597) .. "..." end
  return s
end
t.show = show

-- nil if a and b are equal (tables compared by content); else the path to
-- the first difference and the two values there.
local function diff(a, b, path)
  if a == b then return nil end
  if type(a) ~= "table" or type(b) ~= "table" then return path, a, b end
  local n, keys = sorted_keys(a)
  for i = 1, n do
    local p, x, y = diff(a[i], b[i], path .. "[" .. i .. "]")
    if p then return p, x, y end
  end
  for _, k in ipairs(keys) do
    local p, x, y = diff(a[k], b[k], path .. (type(k) == "string" and k:match("^[%a_][%w_]*$") and "." .. k or key_text(k)))
    if p then return p, x, y end
  end
  for k, v in pairs(b) do
    if a[k] == nil then return path .. (type(k) == "string" and "." .. k or key_text(k)), nil, v end
  end
  return nil
end

------------------------------------------------------------------ assertions
local function prefix(msg) return msg and (tostring(msg) .. ": ") or "" end

--- t.eq(actual, expected [, msg]): equal, tables by content.
function t.eq(actual, expected, msg)
  local path, a, e = diff(actual, expected, "")
  if path == nil then return end
  local lines = { prefix(msg) .. "values differ" .. (path ~= "" and (" at " .. path) or "") }
  lines[#lines + 1] = "  expected: " .. show(e)
  lines[#lines + 1] = "  actual:   " .. show(a)
  if path ~= "" then
    lines[#lines + 1] = "  (whole expected: " .. show(expected) .. ")"
    lines[#lines + 1] = "  (whole actual:   " .. show(actual) .. ")"
  end
  fail(table.concat(lines, "\n"))
end

--- t.ne(a, b [, msg]): not equal (by content).
function t.ne(a, b, msg)
  if diff(a, b, "") == nil then fail(prefix(msg) .. "values are equal, expected them to differ\n  both: " .. show(a)) end
end

--- t.ok(value [, msg]): a true value (not nil or false).
function t.ok(v, msg)
  if not v then fail(prefix(msg) .. "expected a true value\n  actual:   " .. show(v)) end
end

--- t.match(s, pattern [, msg]): s is a string that Lua pattern matches.
function t.match(s, pattern, msg)
  if type(s) ~= "string" or not s:find(pattern) then
    fail(prefix(msg) .. "no match for pattern " .. quote(pattern) .. "\n  actual:   " .. show(s))
  end
end

--- t.error(fn [, pattern]) -> message: fn must raise an error (its own, or
--- one of party code during a t.* call in it) whose text matches pattern.
function t.error(fn, pattern)
  local ok, err = pcall(fn)
  if ok then fail("expected an error, none was raised") end
  if getmetatable(err) == Failure then error(err, 0) end -- an assertion inside fn failed
  local text = tostring(err)
  if pattern and not text:find(pattern) then
    fail("the error does not match pattern " .. quote(pattern) .. "\n  error: " .. text)
  end
  return text
end

--- t.fail(msg): fails the test here.
function t.fail(msg) fail(msg and tostring(msg) or "failed") end

--- t.partyErrors(fn) -> {messages}: runs fn, collecting the errors of party
--- code instead of failing the test on them (to test error paths).
function t.partyErrors(fn)
  local outer, list = collecting, {}
  collecting = list
  local ok, err = pcall(fn)
  check()
  collecting = outer
  if not ok then error(err, 0) end
  return list
end

------------------------------------------------------------------ requests
local function encode(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- (party, room [, opts]) or ("/any/path?query" [, opts]) -> target, opts
local function target(party, room, opts)
  if type(party) == "string" and party:sub(1, 1) == "/" then return party, room or {} end
  if type(party) ~= "string" or type(room) ~= "string" then
    raise("expected (party, room [, options]) or (\"/path\" [, options])")
  end
  if room == "" or room:find("[/?#%s%c]") then raise("room id " .. quote(room) .. " cannot be a URL path segment") end
  opts = opts or {}
  local url = "/parties/" .. party .. "/" .. room .. (opts.path or "")
  local q = {}
  if opts.id then q[#q + 1] = "_pk=" .. encode(opts.id) end
  if opts.query then
    local _, keys = sorted_keys(opts.query)
    for _, k in ipairs(keys) do q[#q + 1] = encode(k) .. "=" .. encode(opts.query[k]) end
  end
  if #q > 0 then url = url .. (url:find("?", 1, true) and "&" or "?") .. table.concat(q, "&") end
  return url, opts
end

local Response = {}
Response.__index = Response
function Response:text() return self.body end
function Response:json()
  local ok, v = pcall(cjson.decode, self.body)
  if not ok then fail("the response body is not JSON: " .. show(self.body)) end
  return v
end

local function response(status, headers, body)
  return setmetatable({ status = status, headers = headers, body = body, ok = status >= 200 and status < 300 },
    Response)
end

local function headers_of(opts)
  local h = {}
  for k, v in pairs(opts.headers or {}) do h[tostring(k):lower()] = tostring(v) end
  return h
end

--- t.fetch(party, room [, {method=, headers=, body=, json=, path=, query=}])
--- or t.fetch("/any/path" [, opts]) -> response (status, headers, body,
--- ok, :text(), :json()). Goes through the server's routing: static files,
--- onFetch, onBeforeRequest, CORS and 404s answer as they would.
function t.fetch(party, room, opts)
  local url
  url, opts = target(party, room, opts)
  local headers, body = headers_of(opts), opts.body
  if opts.json ~= nil then
    body = cjson.encode(opts.json)
    headers["content-type"] = headers["content-type"] or "application/json"
  end
  if body ~= nil and type(body) ~= "string" then body = tostring(body) end
  local status, rheaders, rbody = call(core.fetch, (opts.method or "GET"):upper(), url, headers, body)
  check()
  if not status then raise(rheaders) end
  return response(status, rheaders, rbody)
end

------------------------------------------------------------------ connections
local Conn = {}
local conn_state = { closed = 1, closeCode = 2, closeReason = 3 }
Conn.__index = function(c, k)
  local i = conn_state[k]
  if i then return (select(i, call(core.state, rawget(c, "_h")))) end
  return Conn[k]
end
Conn.__tostring = function(c) return "Connection(" .. c.id .. ")" end

--- t.tryConnect(...) -> conn, or nil and the response that refused it.
function t.tryConnect(party, room, opts)
  local url
  url, opts = target(party, room, opts)
  local h, status, headers, body = call(core.connect, url, headers_of(opts))
  check()
  if h then
    local id, uri = core.ident(h)
    return setmetatable({ _h = h, id = id, uri = uri }, Conn)
  end
  if type(status) ~= "number" then raise(status) end
  return nil, response(status, headers, body)
end

--- t.connect(party, room [, {id=, query=, headers=, path=}]) -> conn:
--- a WebSocket as a client sees it. Fails the test if it is refused.
function t.connect(party, room, opts)
  local c, res = t.tryConnect(party, room, opts)
  if not c then
    raise("the connection to " .. (target(party, room, opts)) .. " was refused: " .. res.status .. " " .. show(res.body))
  end
  return c
end

--- conn:send(message): a string is a text frame, t.binary(s) a binary one.
function Conn:send(message)
  call(core.send, self._h, message)
  check()
end

--- conn:receive([timeout_ms = 1000]) -> the next message, or nil and
--- "closed" / "timeout". Waits in virtual time: alarms and timeouts due
--- before the message arrives run first.
function Conn:receive(timeout)
  local m, why = call(core.receive, self._h, timeout or 1000)
  check()
  return m, why
end

--- conn:receiveJson([timeout_ms]) -> the next message, decoded; fails the
--- test if none came or it is not JSON.
function Conn:receiveJson(timeout)
  local m, why = call(core.receive, self._h, timeout or 1000)
  check()
  if m == nil then fail("expected a message on " .. self.id .. ", got none (" .. why .. ")") end
  local ok, v = pcall(cjson.decode, tostring(m))
  if not ok then fail("the message is not JSON: " .. show(m)) end
  return v
end

--- conn:messages() -> every message received and not read yet (no waiting).
function Conn:messages()
  local list = call(core.messages, self._h)
  check()
  return list
end

--- conn:close([code = 1000 [, reason]]): the client closes; onClose runs.
function Conn:close(code, reason)
  call(core.close, self._h, code or 1000, reason)
  check()
end

------------------------------------------------------------------ time, rooms, storage
--- t.now() -> the virtual clock, ms since the epoch (what os.time() says in party code, in seconds).
t.now = core.now

--- t.advance(ms): moves the virtual clock, running the alarms, crons, idle
--- unloading and receive timeouts due on the way, in order.
function t.advance(ms)
  call(core.advance, ms)
  check()
end

--- t.restart(party, room): the room is unloaded (its connections closed
--- with 1012, as on a server restart) and started again from storage.
function t.restart(party, room)
  call(core.restart, party, room)
  check()
end

--- t.reload(party [, source]) -> true, or false and why: hot reload, as
--- `luaparty dev` does on a save: with source, the party's new text (the
--- file is not touched); without, what is on disk now.
function t.reload(party, source)
  local ok, err = call(core.reload, party, source)
  check()
  return ok, err
end

--- t.loaded(party, room) -> whether the room is live (not unloaded).
function t.loaded(party, room) return call(core.loaded, party, room) end

--- t.cron(name): runs the partykit.json cron `name` now (onCron).
function t.cron(name)
  local ok, err = call(core.cron, name)
  check()
  if not ok then raise(err) end
end

local Storage = {}
Storage.__index = Storage
--- t.storage(party, room) -> what the room has in storage: :get(key),
--- :list([options]) (as storage:list: an array of {key=, value=}), :put(key, value),
--- :delete(key), :alarm() (epoch ms or nil). A live room does not see
--- :put until it starts again (t.restart).
function t.storage(party, room) return setmetatable({ party = party, room = room }, Storage) end
function Storage:get(key) return call(core.storage_get, self.party, self.room, key) end
function Storage:put(key, value) call(core.storage_put, self.party, self.room, key, value) end
function Storage:delete(key) return call(core.storage_delete, self.party, self.room, key) end
function Storage:list(opts) return call(core.storage_list, self.party, self.room, opts) end
function Storage:alarm() return call(core.storage_alarm, self.party, self.room) end

--- t.seed(n): connection ids without _pk (and pipe ids) repeat for a given
--- seed; every test starts from the run's seed (--seed, default 1).
t.seed = core.seed
--- t.binary(s): a binary message to send; t.isBinary(v) tells one.
t.binary = core.binary
t.isBinary = core.isBinary

------------------------------------------------------------------ tests
--- t.test(name, fn): a test. t.beforeEach(fn) / t.afterEach(fn) run around
--- every test of the file (afterEach also after a failure).
function t.test(name, fn)
  if type(name) ~= "string" or type(fn) ~= "function" then raise("t.test(name, function) expected") end
  tests[#tests + 1] = { name = name, fn = fn }
end
function t.beforeEach(fn) before_each[#before_each + 1] = fn end
function t.afterEach(fn) after_each[#after_each + 1] = fn end

-- A traceback of the test's own frames (this module's and C's left out).
local function on_error(e)
  if getmetatable(e) == Failure or getmetatable(e) == PartyError then return e end
  local lines = {}
  for line in debug.traceback("", 2):gmatch("[^\n]+") do
    if not line:find(HERE, 1, true) and not line:find("%[C%]") and line ~= "stack traceback:" then
      lines[#lines + 1] = "  " .. line:gsub("^%s+", "")
    end
  end
  local msg = tostring(e)
  if #lines > 0 then msg = msg .. "\nstack traceback:\n" .. table.concat(lines, "\n") end
  return { msg = msg }
end

local function run_all(list)
  for _, fn in ipairs(list) do fn() end
end

local function indent(text, pad)
  return pad .. tostring(text):gsub("\t", "  "):gsub("\n", "\n" .. pad)
end

-- Runs the file's tests whose "file: name" contains filter; prints one line
-- per test (and what went wrong under a failed one). -> passed, failed
function t._run(file, filter, verbose)
  local passed, failed = 0, 0
  for _, test in ipairs(tests) do
    local full = file .. ": " .. test.name
    if not filter or full:find(filter, 1, true) then
      collecting = nil
      core.begin()
      local t0 = core.clock()
      local problems = {}
      local ok, err = xpcall(function()
        run_all(before_each)
        test.fn()
      end, on_error)
      if not ok then problems[#problems + 1] = err.msg end
      local ok2, err2 = xpcall(function() run_all(after_each) end, on_error)
      if not ok2 then problems[#problems + 1] = err2.msg end
      -- the test's rooms close now: errors of their onClose count too
      local late = core.finish()
      if late then problems[#problems + 1] = "error in party code after the test: " .. table.concat(late, "\n") end
      local ms = core.clock() - t0
      local logs = core.logs()
      if #problems == 0 then passed = passed + 1 else failed = failed + 1 end
      io.write(string.format("%s %s (%.1f ms)\n", #problems == 0 and "ok  " or "FAIL", full, ms))
      for _, p in ipairs(problems) do io.write(indent(p, "    "), "\n") end
      if logs and (#problems > 0 or verbose) then
        io.write("    log:\n")
        for _, line in ipairs(logs) do io.write(indent(line, "      "), "\n") end
      end
    end
  end
  io.stdout:flush()
  return passed, failed
end

return t
