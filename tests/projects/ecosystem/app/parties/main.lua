-- The ecosystem test project's main party: onFetch for URLs outside the
-- parties and static files, onCron recording each run in room "cron-log",
-- an echo for WebSocket traffic (and an error on demand, for the metrics),
-- and connection reports to the reusable "connections" party.
local json = require "cjson"
local Response = require("luaparty").Response

local P = {}

local function path_of(url) return url:match("^%a+://[^/]+([^?#]*)") or url end

function P.onFetch(req, lobby)
  local path = path_of(req.url)
  if path == "/api/hello" then
    return Response.json({ hello = lobby.env.GREETING, party = lobby.party, method = req.method })
  elseif path == "/api/echo" then
    return Response.new(req:text() or "", { status = 201, headers = { ["x-echo"] = req.method } })
  elseif path == "/api/fail" then
    error("onFetch failed on purpose")
  end
  -- nil: 404
end

function P.onCron(cron, lobby)
  print("cron " .. cron.name .. " (" .. tostring(cron.cron) .. ") ran")
  lobby.parties.main:get("cron-log"):fetch({
    method = "POST",
    body = json.encode({ name = cron.name, cron = cron.cron, scheduledTime = cron.scheduledTime }),
  })
end

function P:onConnect(conn)
  self:report("connect", conn)
end

function P:onClose(conn)
  self:report("disconnect", conn)
end

function P:report(kind, conn)
  self.room.context.parties.connections:get("active-connections"):fetch({
    method = "POST",
    body = json.encode({ type = kind, roomId = self.room.id, connectionId = conn.id }),
  })
end

function P:onMessage(message, sender)
  if message == "fail" then error("onMessage failed on purpose") end
  if message == "all" then return self.room:broadcast("to all") end
  sender:send("echo:" .. tostring(message))
end

function P:onRequest(req)
  local path = path_of(req.url)
  if path:match("/fail$") then error("onRequest failed on purpose") end
  if self.room.id == "cron-log" then
    local runs = self.room.storage:get("runs") or {}
    if req.method == "POST" then
      runs[#runs + 1] = req:json()
      self.room.storage:put("runs", runs)
    end
    return Response.json({ count = #runs, runs = runs })
  end
  return Response.json({ room = self.room.id, method = req.method })
end

return P
