-- Test party "main": says hello on connect, echoes everything else back
-- (text as text, binary as binary), and understands JSON commands
-- ({"cmd": ...}) so the tests can drive the room API.
local luaparty = require "luaparty"
local json = require "cjson"
local Response = luaparty.Response

local P = {}

local function subpath(url)
  local path = url:match("^%a+://[^/]+(/[^?#]*)") or url
  return path:match("^/parties/[^/]+/[^/]+(.*)$") or path:match("^/party/[^/]+(.*)$") or ""
end

local function query(url, name)
  local q = url:match("%?(.*)$")
  if not q then return nil end
  for k, v in q:gmatch("([^&=]+)=([^&]*)") do
    if k == name then return v end
  end
  return nil
end

local function unhex(s)
  return (s:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end))
end

local function idlist(iter)
  local ids = {}
  for conn in iter do ids[#ids + 1] = conn.id end
  table.sort(ids)
  return table.concat(ids, ",")
end

function P:onStart()
  self.starts = (self.starts or 0) + 1
  self.log = { "start" }
  print("main onStart " .. self.room.id)
end

local function note(self, what)
  if self.log then self.log[#self.log + 1] = what else self.noStartBefore = what end
end

function P:getConnectionTags(conn, ctx)
  local tags = {}
  local t = query(ctx.request.url, "tags")
  if t then
    for tag in t:gmatch("[^,]+") do tags[#tags + 1] = tag end
  end
  return tags
end

function P:onConnect(conn, ctx)
  note(self, "connect")
  conn:send(json.encode({
    type = "hello",
    id = conn.id,
    uri = conn.uri,
    url = ctx.request.url,
    room = self.room.id,
    party = self.room.name,
    starts = self.starts or 0,
    firstLog = self.log and self.log[1] or json.null,
    noStartBefore = self.noStartBefore or json.null,
  }))
end

function P:onClose(conn)
  note(self, "close")
  if conn.uri and conn.uri:find("announce=1", 1, true) then
    self.room:broadcast(json.encode({ type = "left", id = conn.id }), { conn.id })
  end
end

local commands = {}

function commands.broadcast(self, c, sender)
  self.room:broadcast(c.msg, c.without)
end

function commands.broadcastBinary(self, c, sender)
  self.room:broadcast(luaparty.binary(unhex(c.hex)), c.without)
end

function commands.sendBinary(self, c, sender)
  sender:send(luaparty.binary(unhex(c.hex)))
end

function commands.list(self, c, sender)
  sender:send(json.encode({ type = "list", ids = idlist(self.room:getConnections()) }))
end

function commands.tagged(self, c, sender)
  sender:send(json.encode({ type = "tagged", tag = c.tag, ids = idlist(self.room:getConnections(c.tag)) }))
end

function commands.get(self, c, sender)
  local conn = self.room:getConnection(c.id)
  sender:send(json.encode({
    type = "get",
    found = conn ~= nil,
    id = conn and conn.id or json.null,
    uri = conn and conn.uri or json.null,
  }))
end

-- The party drops its connection object's handle and send function (private
-- fields) and collects: the connection must still get its messages.
function commands.dropHandle(self, c, sender)
  sender._h, sender.send = nil, nil
  collectgarbage()
  collectgarbage()
  self.room:broadcast(json.encode({ type = "dropped", id = sender.id }))
end

function commands.whoami(self, c, sender)
  self.room:broadcast(json.encode({ type = "whoami", id = sender.id }))
end

function commands.sendTo(self, c, sender)
  local conn = self.room:getConnection(c.id)
  if conn then
    if c.via == "sender" then sender.send(conn, c.msg) -- another connection's send, called with conn
    elseif c.via == "method" then getmetatable(conn).send(conn, c.msg) -- the Connection method
    else conn:send(c.msg) end
  end
  sender:send(json.encode({ type = "sent", found = conn ~= nil }))
end

function commands.setState(self, c, sender)
  sender:setState(c.state)
  sender:send(json.encode({ type = "state", state = sender.state }))
end

function commands.getState(self, c, sender)
  local conn = self.room:getConnection(c.id or sender.id)
  local st = conn and conn.state
  if st == nil then st = json.null end
  sender:send(json.encode({ type = "state", id = conn and conn.id or json.null, state = st }))
end

function commands.close(self, c, sender)
  sender:close(c.code, c.reason)
end

function commands.info(self, c, sender)
  sender:send(json.encode({ type = "info", starts = self.starts or 0, log = table.concat(self.log or {}, ",") }))
end

function P:onMessage(message, sender)
  note(self, "message")
  if luaparty.isBinary(message) then
    sender:send(message)
    return
  end
  if message:sub(1, 1) == "{" then
    local ok, c = pcall(json.decode, message)
    if ok and type(c) == "table" and c.cmd and commands[c.cmd] then
      commands[c.cmd](self, c, sender)
      return
    end
  end
  sender:send(message)
end

function P:onRequest(req)
  note(self, "request")
  local sub = subpath(req.url)
  if sub == "/status/418" then
    return Response.new("teapot", { status = 418, headers = { ["x-custom"] = "yes", ["content-type"] = "text/x-tea" } })
  elseif sub == "/plain" then
    return "plain text"
  elseif sub == "/nil" then
    return nil
  elseif sub == "/json" then
    return Response.json({ ok = true, n = 7, list = { 1, 2, 3 }, s = "h\195\169llo" })
  elseif sub == "/created" then
    return Response.json({ created = true }, { status = 201, headers = { ["x-created"] = "1" } })
  elseif sub == "/json-extra" then
    -- a Response.json's headers, read and changed before it is returned
    local r = Response.json({ a = 1 })
    r.headers["x-extra"] = r.headers["content-type"]
    return r
  elseif sub == "/json-body" then
    return Response.json({ got = req:json() })
  elseif sub == "/env" then
    return Response.json(self.room.env)
  elseif sub == "/broadcast" then
    self.room:broadcast(req:text())
    return "ok"
  elseif sub == "/headers-later" then
    -- req.headers read only after the callback was suspended (a storage
    -- commit's wait is not one; a cross-party fetch is), then changed
    local r = self.room.context.parties.main:get("headers-peer"):fetch("/plain")
    local h = req.headers
    h["x-added"] = "yes"
    local names = {}
    for k in pairs(req.headers) do names[#names + 1] = k end
    table.sort(names)
    return Response.json({ peer = r:text(), dup = h["x-dup"], empty = h["x-empty"], added = req.headers["x-added"],
                           names = table.concat(names, ","), same = rawequal(h, req.headers) })
  elseif sub == "/count" then
    local n = 0
    for _ in self.room:getConnections() do n = n + 1 end
    return Response.json({ count = n })
  end
  return Response.json({
    method = req.method,
    url = req.url,
    headers = req.headers,
    body = req:text(),
    room = self.room.id,
    party = self.room.name,
    starts = self.starts or 0,
    firstLog = self.log and self.log[1] or json.null,
    noStartBefore = self.noStartBefore or json.null,
  })
end

return P
