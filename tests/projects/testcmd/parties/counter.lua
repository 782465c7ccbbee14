-- counter: POST {kind=, room=} counts by kind, durably; GET returns the counts.
local json = require "cjson"
local Response = require("luaparty").Response

local Counter = {}

function Counter:onStart()
  self.counts = self.room.storage:get("counts") or {}
  self.starts = (self.room.storage:get("starts") or 0) + 1
  self.room.storage:put("starts", self.starts)
end

function Counter:onRequest(req)
  if req.method == "POST" then
    local update = req:json()
    self.counts[update.kind] = (self.counts[update.kind] or 0) + 1
    self.room.storage:put("counts", self.counts)
    if update.at then self.room.storage:put("last_at", update.at) end
    self.room:broadcast(json.encode(self.counts))
  end
  return Response.json({ counts = self.counts, starts = self.starts })
end

return Counter
