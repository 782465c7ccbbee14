-- Test party registered under the name "connections".
local json = require "cjson"

local P = {}

function P:onConnect(conn, ctx)
  conn:send(json.encode({ party = self.room.name, room = self.room.id }))
end

function P:onRequest(req)
  return "connections:" .. self.room.id
end

return P
