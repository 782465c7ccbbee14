-- Test party "ledger" for tests/integration/cluster-durability.test.mjs:
-- every write is a storage key, so a test can check that no acknowledged
-- write was lost when a node or Redis died.
--   POST /parties/ledger/<id>  body "<client>:<n>" -> put("w:<client>:<n>"), answers "ok:<client>:<n>"
--   GET  /parties/ledger/<id>               -> {starts, keys = [every "w:" key], fired}
--   POST /parties/ledger/<id>/alarm?at=MS  -> setAlarm(MS)
--   WebSocket "w:<client>:<n>"             -> the same put, answered "ack:<client>:<n>"
-- onStart counts its runs in storage ("starts"); onAlarm records when it ran;
-- onClose prints "ledger onClose <connection id>" to the log.
local luaparty = require "luaparty"
local Response = luaparty.Response

local P = {}

function P:onStart()
  local s = self.room.storage
  s:put("starts", (s:get("starts") or 0) + 1)
end

local function keys(s)
  local out = {}
  for k in s:list({ prefix = "w:" }):pairs() do out[#out + 1] = k:sub(3) end
  return out
end

function P:onRequest(req)
  local s = self.room.storage
  if req.url:find("/alarm?", 1, true) then
    s:setAlarm(tonumber(req:query("at")))
    return "alarm-set"
  end
  if req.method == "POST" then
    local w = req:text()
    s:put("w:" .. w, true)
    return "ok:" .. w
  end
  return Response.json({ starts = s:get("starts") or 0, keys = keys(s), fired = s:get("fired") or false })
end

function P:onMessage(message, sender)
  if type(message) == "string" and message:sub(1, 2) == "w:" then
    self.room.storage:put(message, true)
    sender:send("ack:" .. message:sub(3))
  end
end

function P:onClose(conn)
  print("ledger onClose " .. conn.id)
end

function P:onAlarm()
  self.room.storage:put("fired", { at = os.time() })
end

return P
