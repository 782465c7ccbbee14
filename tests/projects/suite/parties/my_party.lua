-- Test party registered under the name "my-party" (a name with a dash).
local json = require "cjson"
local Response = require("luaparty").Response

local P = {}

function P:onConnect(conn, ctx)
  conn:send(json.encode({ party = self.room.name, room = self.room.id, id = conn.id }))
end

function P:onMessage(msg, sender)
  local tag = tostring(msg):match("^tagged:(.*)$")
  if tag then -- no getConnectionTags here: a connection's only tag is its id
    local ids = {}
    for c in self.room:getConnections(tag) do ids[#ids + 1] = c.id end
    sender:send("tagged:" .. table.concat(ids, ","))
    return
  end
  sender:send("my-party:" .. tostring(msg))
end

function P:onRequest(req)
  return Response.json({ party = self.room.name, room = self.room.id, greeting = self.room.env.GREETING })
end

return P
