-- Test party for tests/integration/limits.test.mjs and hardening.test.mjs:
-- callbacks that run into the server's limits on request or on message.
-- The tests find the lines below by their text: keep each bomb on one line.
local luaparty = require "luaparty"
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

-- Busy for ms milliseconds of CPU: longer than a time slice, shorter than the limit.
local function busy(ms)
  local stop = os.clock() + ms / 1000
  while os.clock() < stop do end
end

-- Kept on the instance only: a fresh instance (after a room reset) starts at 1.
local function count(self)
  self.n = (self.n or 0) + 1
  return self.n
end

function P:onRequest(req)
  local p = subpath(req.url)
  if p == "/count" then return tostring(count(self)) end
  if p == "/work" then
    busy(tonumber(query(req.url, "ms")) or 300)
    return "worked"
  end
  if p == "/spin" then
    while true do end -- BOMB: spin
  end
  if p == "/spin-pcall" then
    while true do pcall(function() while true do end end) end -- BOMB: spin-pcall
  end
  if p == "/alloc-table" then
    local t = {} local i = 0 while true do i = i + 1 t[i] = { i, i, i } end -- BOMB: alloc-table
  end
  if p == "/alloc-rep" then
    local s = string.rep("x", 200 * 1024 * 1024) -- BOMB: alloc-rep
    return tostring(#s)
  end
  if p == "/inject" then
    return Response.new("x", { headers = { ["x-a"] = "a\r\nx-b: injected" } })
  end
  if p == "/closed" then
    -- what onClose / onError recorded for connection ?id=
    local id = query(req.url, "id") or ""
    local closed = self.room.storage:get("closed:" .. id)
    local err = self.room.storage:get("error:" .. id)
    return Response.json({ closed = closed or false, error = err or false })
  end
  return "ok " .. self.room.id
end

function P:onMessage(message, sender)
  if message == "spin" then
    while true do end -- BOMB: message-spin
  end
  local ms = tostring(message):match("^work (%d+)$")
  if ms then
    busy(tonumber(ms))
    sender:send("worked")
    return
  end
  if message == "count" then
    sender:send(tostring(count(self)))
    return
  end
  sender:send(message)
end

function P:onError(conn, err)
  self.room.storage:put("error:" .. conn.id, tostring(err))
end

function P:onClose(conn)
  local n = self.room.storage:get("closed:" .. conn.id) or 0
  self.room.storage:put("closed:" .. conn.id, n + 1)
end

return P
