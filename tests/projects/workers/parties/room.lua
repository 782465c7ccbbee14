-- Test party "main" for tests/integration/workers.test.mjs: one room must be
-- one instance, whichever worker a client lands on.
--   POST            -> increments a counter in memory and in storage
--   GET             -> {id, hits (memory), stored, conns, fired}
--   POST ?alarm=MS  -> sets an alarm; onAlarm stores "fired"
--   WebSocket       -> every message is broadcast to the room's other
--                      connections as "<id>:<message>"; "who" answers with
--                      the connection count; a socket from the hub gets an
--                      echo "echo:<message>"
local json = require "cjson"
local Response = require("luaparty").Response

local P = {}

function P:onStart()
  self.hits = 0 -- in memory: two instances of one room would split it
end

function P:onRequest(req)
  local s = self.room.storage
  local alarm = req.url:match("[?&]alarm=(%d+)")
  if req.method == "POST" and alarm then
    s:setAlarm(os.time() * 1000 + tonumber(alarm))
    s:put("fired", false)
    return Response.json({ ok = true })
  elseif req.method == "POST" then
    self.hits = self.hits + 1
    s:put("stored", (s:get("stored") or 0) + 1)
    return Response.json({ hits = self.hits })
  end
  local n = 0
  for _ in self.room:getConnections() do n = n + 1 end
  return Response.json({
    id = self.room.id, hits = self.hits, stored = s:get("stored") or 0, conns = n,
    fired = s:get("fired") or false,
  })
end

function P:onAlarm()
  self.room.storage:put("fired", true)
end

function P:onMessage(message, sender)
  if message == "who" then
    local n = 0
    for _ in self.room:getConnections() do n = n + 1 end
    sender:send("conns:" .. n)
  elseif message:sub(1, 5) == "echo " then
    sender:send("echo:" .. message:sub(6))
  else
    self.room:broadcast(sender.id .. ":" .. message, { sender.id })
  end
end

return P
