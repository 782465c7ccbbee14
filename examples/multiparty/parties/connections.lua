local json = require "cjson"
local Response = require("luaparty").Response

local Rooms = {}

function Rooms:onRequest(request)
  -- read from storage
  self.connections = self.connections or self.room.storage:get("connections") or {}
  -- update connection count
  if request.method == "POST" then
    local update = request:json()
    local count = self.connections[update.roomId] or 0
    if update.type == "connect" then self.connections[update.roomId] = count + 1 end
    if update.type == "disconnect" then self.connections[update.roomId] = math.max(0, count - 1) end
    -- notify any connected listeners
    self.room:broadcast(json.encode(self.connections))
    -- save to storage
    self.room.storage:put("connections", self.connections)
  end
  -- send connection counts to requester
  return Response.new(json.encode(self.connections))
end

return Rooms
