-- main: echoes, counts its connections in the counter party (a real
-- cross-party fetch), runs the cron into the counter party too.
local json = require "cjson"
local luaparty = require "luaparty"
local names = require "lib.names"

local Main = {}

local function tell_counter(self, kind)
  self.room.context.parties.counter:get("connections"):fetch({
    method = "POST", body = json.encode({ kind = kind, room = self.room.id }),
  })
end

function Main:onConnect(conn, ctx)
  conn:send(json.encode({ type = "hello", id = conn.id, greeting = self.room.env.GREETING,
                          name = ctx.request:query("name"), ua = ctx.request.headers["user-agent"] }))
  tell_counter(self, "connect")
end

function Main:onMessage(message, sender)
  if luaparty.isBinary(message) then
    sender:send(luaparty.binary(message:bytes():reverse()))
  elseif message == "shout" then
    sender:send(names.shout("hey"))
  elseif message == "bye" then
    sender:close(4000, "asked to leave")
  elseif message == "everyone" then
    self.room:broadcast("to all from " .. sender.id)
  else
    sender:send("echo: " .. message)
  end
end

function Main:onClose(conn)
  tell_counter(self, "disconnect")
end

function Main:onRequest(req)
  return luaparty.Response.json({ method = req.method, body = req:text(), url = req.url,
                                  header = req.headers["x-test"] })
end

function Main.onCron(cron, lobby)
  lobby.parties.counter:get("crons"):fetch({ method = "POST", body = json.encode({ kind = cron.name, at = cron.scheduledTime }) })
end

function Main.onFetch(req, lobby)
  return luaparty.Response.new("fetched " .. req.url:match("//[^/]+(/.*)$"))
end

return Main
