-- Broadcasts on demand, to fill the output queue of a client that stopped
-- reading: "burst N SIZE" broadcasts N messages of SIZE bytes to the room,
-- then tells the sender "done K" (K counts bursts). Anything else is echoed.
local P = {}

function P:onMessage(message, sender)
  local n, size = tostring(message):match("^burst (%d+) (%d+)$")
  if n then
    self.bursts = (self.bursts or 0) + 1
    local payload = string.rep("y", tonumber(size))
    for _ = 1, tonumber(n) do self.room:broadcast(payload) end
    sender:send("done " .. self.bursts)
    return
  end
  sender:send(message)
end

return P
