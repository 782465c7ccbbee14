-- Test party "other": the callee of cross-party calls between nodes.
--   GET/POST /parties/other/<id> -> {party = "other", room, hits, sockets} (POST: hits + 1, in
--                                   memory; sockets: WebSockets this instance has seen connect)
--   WebSocket: "echo <x>" -> "other:<x>"
local Response = require("luaparty").Response

local P = {}

function P:onStart()
  self.hits = 0
  self.sockets = 0
end

function P:onConnect()
  self.sockets = self.sockets + 1
end

function P:onRequest(req)
  if req.method == "POST" then self.hits = self.hits + 1 end
  return Response.json({ party = "other", room = self.room.id, hits = self.hits, sockets = self.sockets })
end

function P:onMessage(message, sender)
  if type(message) == "string" and message:sub(1, 5) == "echo " then
    sender:send("other:" .. message:sub(6))
  end
end

return P
