-- Test party registered under the name "my-party" (a name with a dash).
local json = require "cjson"
local Response = require("luaparty").Response

local P = {}

function P:onConnect(conn, ctx)
  conn:send(json.encode({ party = self.room.name, room = self.room.id, id = conn.id }))
end

function P:onMessage(msg, sender)
  sender:send("my-party:" .. tostring(msg))
end

function P:onRequest(req)
  return Response.json({ party = self.room.name, room = self.room.id, greeting = self.room.env.GREETING })
end

return P
