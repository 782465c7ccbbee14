-- peer: the room an onAlarm fetches (alarm.lua, mode "peer").
local T = require "lib.testlib"

local Peer = {}

function Peer:onRequest(req)
  local s = self.room.storage
  if req.method == "POST" and req.url:find("/attempt$") then
    local n = (s:get("attempts") or 0) + 1
    s:put("attempts", n)
    return tostring(n)
  end
  if req.method == "POST" then
    local body = req:json()
    s:put("from", body.from)
    s:put("url", req.url)
    return "peer " .. self.room.id .. " got " .. tostring(body.from)
  end
  return T.reply({ from = s:get("from"), url = s:get("url"), attempts = s:get("attempts"), room = self.room.id })
end

return Peer
