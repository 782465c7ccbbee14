-- idle: onStart counts its runs in storage ("starts"), so a test can see
-- when the room was unloaded and loaded again.
local T = require "lib.testlib"

local Idle = {}

function Idle:onStart()
  local s = self.room.storage
  s:put("starts", (s:get("starts") or 0) + 1)
  self.loadedStarts = s:get("starts")
end

function Idle:onConnect(conn)
  conn:send("hello " .. tostring(self.room.storage:get("starts")))
end

function Idle:onMessage(message, sender)
  sender:send("echo " .. tostring(message))
end

function Idle:onRequest(req)
  local s = self.room.storage
  if req.method == "POST" then
    local cmd = req:json()
    s:put(cmd.key, cmd.value)
  end
  return T.reply({
    starts = s:get("starts"),
    instanceStarts = self.loadedStarts,
    kept = s:get("kept"),
  })
end

return Idle
