-- Test party "main" for tests/integration/cluster*.test.mjs. A room cannot
-- know which node runs it; the tests read x-luaparty-node for that.
--   GET  /parties/main/<id>            -> {room, starts, hits}: starts counts onStart of this
--                                         room id in this Lua state (module level, so a second
--                                         activation of the room on the same worker shows)
--   POST /parties/main/<id>            -> hits + 1 (in memory), answers {room, starts, hits}
--   GET  .../headers                   -> the request's headers as the party sees them
--   GET  .../call?target=ID            -> fetch of other/ID from this room; answers
--                                         {status, node (x-luaparty-node of that answer), body}
--   GET  .../pipe?target=ID            -> a socket to other/ID: sends "echo hi", answers
--                                         {got, err} (err: "closed: <reason>" if it closed)
--   WebSocket messages:
--     "echo:<x>"     -> "echo:<x>" back to the sender
--     "bcast:<x>"    -> "bcast:<x>" to every other connection
--     "who"          -> "conns:<n>"
--     "alarm:<ms>"   -> setAlarm(ms), then "alarm-set"; onAlarm broadcasts "alarm-fired"
local luaparty = require "luaparty"
local json = require "cjson"
local Response = luaparty.Response

local P = {}

local starts = {} -- room id -> onStart count in this Lua state

local function count(room)
  local n = 0
  for _ in room:getConnections() do n = n + 1 end
  return n
end

function P:onStart()
  starts[self.room.id] = (starts[self.room.id] or 0) + 1
  self.hits = 0
end

local function view(self)
  return { room = self.room.id, starts = starts[self.room.id] or 0, hits = self.hits, conns = count(self.room) }
end

function P:onRequest(req)
  local path = (req.url:match("^%a+://[^/]+(/[^?#]*)") or req.url):match("^/parties/[^/]+/[^/]+(.*)$") or ""
  if path == "/headers" then
    local h = {}
    for k, v in pairs(req.headers) do h[k] = v end
    return Response.json(h)
  elseif path == "/call" then
    local stub = self.room.context.parties.other:get(req:query("target"))
    local ok, r = pcall(stub.fetch, stub, "/", { method = "POST" })
    if not ok then return Response.json({ error = tostring(r) }, { status = 500 }) end
    return Response.json({ status = r.status, node = r.headers["x-luaparty-node"] or json.null, body = r:json() })
  elseif path == "/pipe" then
    local sock = self.room.context.parties.other:get(req:query("target")):socket()
    sock:send("echo hi")
    local got, err, why = sock:receive(3000)
    sock:close()
    return Response.json({ got = got or json.null, err = why and (err .. ": " .. why) or err or json.null })
  end
  if req.method == "POST" then self.hits = self.hits + 1 end
  return Response.json(view(self))
end

function P:onMessage(message, sender)
  if type(message) ~= "string" then
    sender:send(message)
  elseif message:sub(1, 5) == "echo:" then
    sender:send(message)
  elseif message:sub(1, 6) == "bcast:" then
    self.room:broadcast(message, { sender.id })
  elseif message == "who" then
    sender:send("conns:" .. count(self.room))
  elseif message:sub(1, 6) == "alarm:" then
    self.room.storage:setAlarm(tonumber(message:sub(7)))
    sender:send("alarm-set")
  else
    sender:send("unknown:" .. message)
  end
end

function P:onAlarm()
  self.room:broadcast("alarm-fired")
end

return P
