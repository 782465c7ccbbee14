-- Counts closes in storage, so a test sees that onClose ran for a dead peer.
local P = {}
function P:onClose(conn)
  self.room.storage:put("closed", (self.room.storage:get("closed") or 0) + 1)
end
function P:onRequest() return tostring(self.room.storage:get("closed") or 0) end
return P
