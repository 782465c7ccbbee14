-- Writes 8 KB per message and acknowledges it: used to fill a small disk.
-- GET returns how many keys are stored.
local P = {}

function P:onMessage(message, sender)
  if message == "ping" then return sender:send("pong") end
  local n = tonumber(message)
  self.room.storage:put("k" .. n, string.rep("x", 8000))
  sender:send("ack " .. n)
end

function P:onRequest(req)
  local n = 0
  for _ in self.room.storage:list():pairs() do n = n + 1 end
  return tostring(n)
end

return P
