-- timer: "alarm N" sets an alarm N ms ahead; "wait N" waits N ms on a socket
-- to another room that never answers; "now" tells os.time().
local Timer = {}

function Timer:onMessage(message, sender)
  local cmd, n = message:match("^(%a+) ?(%d*)$")
  if cmd == "alarm" then
    self.room.storage:setAlarm(os.time() * 1000 + tonumber(n))
    self.room.storage:put("who", sender.id)
    sender:send("alarm set for " .. self.room.storage:getAlarm())
  elseif cmd == "wait" then
    local sock = self.room.context.parties.timer:get("silent"):socket()
    local msg, why = sock:receive(tonumber(n))
    sender:send("waited: " .. tostring(msg or why) .. " at " .. os.time())
    sock:close()
  elseif cmd == "now" then
    sender:send(tostring(os.time()))
  end
end

function Timer:onAlarm(info)
  local who = self.room.storage:get("who")
  local conn = who and self.room:getConnection(who)
  if conn then conn:send("alarm at " .. os.time() .. " retry " .. info.retryCount) end
  self.room.storage:put("fired", (self.room.storage:get("fired") or 0) + 1)
end

return Timer
