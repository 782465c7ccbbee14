local P = {}

function P:onRequest(req)
  local n = (self.room.storage:get("n") or 0) + 1
  self.room.storage:put("n", n)
  return tostring(n)
end

function P:onMessage(message, sender)
  sender:send("pong:" .. message)
end

return P
