-- Holds a cross-party socket to a room of "main" (limits.test.mjs: a room
-- reset closes every connection, this one among them).
-- GET /parties/holder/<id>/open?to=<room>   opens it, answers the first message
-- GET /parties/holder/<id>/state            what its onclose saw
local P = {}

function P:onRequest(req)
  local action = req.url:match("/parties/holder/[^/]+/(%a+)")
  if action == "open" then
    local to = req.url:match("[?&]to=([^&]+)")
    local ws = self.room.context.parties.main:get(to):socket()
    ws:send("count")
    local first = ws:receive(3000)
    ws.onclose = function(code) self.closed = code end
    self.ws = ws
    return tostring(first)
  end
  if action == "state" then return tostring(self.closed) end
  return "?"
end

return P
