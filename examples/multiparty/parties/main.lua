local json = require "cjson"

local Server = {}

function Server:onConnect(connection, ctx)
  self:updateConnections("connect", connection)
end

function Server:onClose(connection)
  self:updateConnections("disconnect", connection)
end

function Server:updateConnections(type, connection)
  -- get handle to a shared room instance of the "connections" party
  local connectionsParty = self.room.context.parties.connections
  local connectionsRoom = connectionsParty:get("active-connections")
  -- notify room by making an HTTP POST request
  connectionsRoom:fetch({
    method = "POST",
    body = json.encode({ type = type, connectionId = connection.id, roomId = self.room.id }),
  })
end

return Server
