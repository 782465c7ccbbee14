-- Drives luaparty.connect (outbound WebSockets) for tests/integration/connect.test.mjs.
-- GET  -> "pong".
-- POST -> a JSON command; answers JSON (or {error = message} when connect raises).
--
--   {op = "run", url, headers?, steps = [...]}: connect, then run the steps in
--     this one callback and report each step's result:
--       {send = "text"} | {sendHex = "00ff.."} (a Binary) | {receive = true, timeout? = ms}
--       | {close = code?, reason?}
--     receive results: {kind = "text", data} | {kind = "binary", hex, isBinary}
--       | {kind = "nil", r2, r3} (the 2nd and 3rd return values)
--     the answer also has closed, closeCode, closeReason of the socket at the end.
--   {op = "hold", name, url, headers?, send? = {...}}: connect and keep the socket in the
--     room with onmessage (appends to storage "inbox:<name>") and onclose
--     (storage "closed:<name>" = code).
--   {op = "inbox", name}: what onmessage/onclose recorded, and the socket's fields.
--     noHandler = true: no onmessage, messages queue for holdReceive.
--   {op = "holdReceive", name, n, timeout?}: n receive() calls on a held socket.
--   {op = "holdSend", name, send | sendHex}: send on a held socket.
--   {op = "holdClose", name, code?, reason?}: close a held socket from Lua.
--   {op = "bad", url, headers?}: connect with these arguments, report the error raised.
local json = require "cjson"
local luaparty = require "luaparty"
local Response = luaparty.Response

local P = {}

local function to_hex(s)
  return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

local function from_hex(h)
  return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end))
end

local function describe(m, r2, r3)
  if m == nil then return { kind = "nil", r2 = r2, r3 = r3 } end
  if luaparty.isBinary(m) then return { kind = "binary", hex = to_hex(m:bytes()), isBinary = true, len = #m } end
  return { kind = type(m) == "string" and "text" or type(m), data = m }
end

local function sendable(step)
  if step.sendHex then return luaparty.binary(from_hex(step.sendHex)) end
  return step.send
end

local function connect(cmd)
  if cmd.headers then return luaparty.connect(cmd.url, { headers = cmd.headers }) end
  return luaparty.connect(cmd.url)
end

local ops = {}

function ops.run(cmd)
  local ok, s = pcall(connect, cmd)
  if not ok then return { error = tostring(s) } end
  local results = {}
  for i, step in ipairs(cmd.steps or {}) do
    local r
    if step.send or step.sendHex then
      r = { sent = s:send(sendable(step)) }
    elseif step.receive then
      r = describe(s:receive(step.timeout))
    elseif step.close then
      s:close(step.close ~= true and step.close or nil, step.reason)
      r = { closedNow = s.closed }
    end
    results[i] = r or json.null
  end
  return { results = results, closed = s.closed, closeCode = s.closeCode, closeReason = s.closeReason }
end

function ops.hold(cmd, self)
  local ok, s = pcall(connect, cmd)
  if not ok then return { error = tostring(s) } end
  local name = cmd.name
  local storage = self.room.storage
  if not cmd.noHandler then s.onmessage = function(m)
    local inbox = storage:get("inbox:" .. name) or {}
    inbox[#inbox + 1] = describe(m)
    storage:put("inbox:" .. name, inbox)
  end end
  s.onclose = function(code)
    storage:put("closed:" .. name, { code = code })
  end
  self.held = self.held or {}
  self.held[name] = s
  local sent = {}
  for i, step in ipairs(cmd.send or {}) do sent[i] = s:send(sendable(step)) end
  return { ok = true, sent = sent }
end

function ops.inbox(cmd, self)
  local s = self.held and self.held[cmd.name]
  local storage = self.room.storage
  return {
    messages = storage:get("inbox:" .. cmd.name) or {},
    onclose = storage:get("closed:" .. cmd.name),
    held = s ~= nil,
    closed = s and s.closed,
    closeCode = s and s.closeCode,
    closeReason = s and s.closeReason,
  }
end

function ops.holdSend(cmd, self)
  local s = self.held[cmd.name]
  return { sent = s:send(sendable(cmd)) }
end

function ops.holdReceive(cmd, self)
  local s = self.held[cmd.name]
  local out = {}
  for i = 1, cmd.n or 1 do out[i] = describe(s:receive(cmd.timeout)) end
  return { results = out }
end

function ops.holdClose(cmd, self)
  local s = self.held[cmd.name]
  s:close(cmd.code, cmd.reason)
  return { closed = s.closed }
end

function ops.bad(cmd)
  local ok, err = pcall(luaparty.connect, cmd.url, cmd.options)
  return { raised = not ok, error = not ok and tostring(err) or nil }
end

function P:onRequest(req)
  if req.method ~= "POST" then return "pong" end
  local cmd = req:json()
  local op = ops[cmd.op or "run"]
  if not op then return Response.new("unknown op", { status = 400 }) end
  return Response.json(op(cmd, self))
end

return P
