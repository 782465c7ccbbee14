-- Echoes messages; "fetch" asks the store party, "socket" talks to it over a
-- cross-party socket. Used by tests/valgrind.sh.
local Response = require("luaparty").Response
local P = {}

function P:onMessage(message, sender)
  if message == "fetch" then
    local res = self.room.context.parties.store:get("s1"):fetch({ method = "POST", body = "x" })
    sender:send("fetched " .. res:text())
  elseif message == "socket" then
    local ws = self.room.context.parties.store:get("s1"):socket()
    ws:send("ping")
    local reply = ws:receive()
    ws:close()
    sender:send("socket " .. tostring(reply))
  else
    sender:send(message)
  end
end

function P:onRequest(req)
  return Response.json({ room = self.room.id, method = req.method })
end

return P
