-- alarm: setAlarm/getAlarm/deleteAlarm over HTTP and an onAlarm whose
-- behaviour is chosen by the "mode" key:
--   "ok"       record the run in "fired" (and count runs in "firedCount")
--   "failOnce" raise on the first run of this room instance, record the second
--   "failOnceViaPeer"  raise on the first run ever (attempts counted in a peer room)
--   "periodic" set the next alarm from onAlarm, until it ran 3 times
--   "peer"     fetch room "peer-<id>" of the peer party, record its answer
local T = require "lib.testlib"
local json = require "cjson"

local Alarm = {}

function Alarm:onStart()
  local s = self.room.storage
  s:put("starts", (s:get("starts") or 0) + 1)
end

function Alarm:onAlarm(info)
  local s = self.room.storage
  local mode = s:get("mode") or "ok"
  self.runs = (self.runs or 0) + 1
  self.infos = self.infos or {}
  self.infos[#self.infos + 1] = { retryCount = info.retryCount, isRetry = info.isRetry }
  if mode == "failOnce" and self.runs == 1 then
    error("planned failure of the first onAlarm run")
  end
  local attempt = nil
  if mode == "failOnceViaPeer" then
    -- counts attempts in another room, so the count survives this room being unloaded
    local res = self.room.context.parties.peer:get("attempts-" .. self.room.id):fetch("/attempt", { method = "POST" })
    attempt = tonumber(res:text())
    if attempt == 1 then error("planned failure of attempt 1") end
  end
  local record = {
    retryCount = info.retryCount,
    isRetry = info.isRetry,
    runsInThisInstance = self.runs,
    infos = self.infos,
    id = self.room.id,
    name = self.room.name,
    startsAtAlarm = s:get("starts"),
    attempt = attempt,
    alarmInside = s:getAlarm(),
  }
  if mode == "peer" then
    local stub = self.room.context.parties.peer:get("peer-of-" .. self.room.id)
    local res = stub:fetch("/from-alarm", { method = "POST", body = json.encode({ from = self.room.id }) })
    record.peerStatus = res.status
    record.peerBody = res:text()
  end
  local count = (s:get("firedCount") or 0) + 1
  if mode == "periodic" and count < 3 then
    -- an alarm set by onAlarm itself must stay (and run)
    local nextAt = os.time() * 1000 + 1000
    s:setAlarm(nextAt)
    record.setInside = nextAt
    record.alarmAfterSet = s:getAlarm()
  end
  s:put("firedCount", count)
  s:put("fired", record)
end

function Alarm:onRequest(req)
  local s = self.room.storage
  if req.method ~= "POST" then
    return T.reply({
      fired = s:get("fired"),
      firedCount = s:get("firedCount") or 0,
      starts = s:get("starts") or 0,
      alarm = s:getAlarm(),
      room = self.room.id,
    })
  end
  local cmd = req:json()
  if cmd.op == "mode" then
    s:put("mode", cmd.mode)
    return T.reply({ done = true })
  end
  local ok, result = pcall(T.run, s, cmd)
  if not ok then return T.reply({ error = tostring(result) }, 500) end
  if result == nil then return T.reply({ error = "unknown op " .. tostring(cmd.op) }, 400) end
  return T.reply(result)
end

return Alarm
