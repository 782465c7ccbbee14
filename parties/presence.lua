-- presence.lua - who is in a room, live.
--
-- Reusable party: name it in any project's partykit.json, e.g.
--   "parties": { "presence": "../../parties/presence.lua" }
-- and connect to ws://HOST/parties/presence/ROOM?name=Alice
-- (the `name` query parameter; without one, the connection id is the name).
--
-- Messages it sends (JSON text frames):
--   {"type":"sync","self":{"id":..,"name":..},"users":[{"id":..,"name":..}, ...]}
--        to a client that just connected: everyone present, itself included,
--        in the order they arrived
--   {"type":"join","user":{"id":..,"name":..}}     to the others when someone arrives
--   {"type":"leave","user":{"id":..,"name":..}}    to those left when someone goes
--   {"type":"rename","user":{"id":..,"name":..}}   to everyone when someone renames
--   {"type":"error","message":".."}                to a client that sent something unknown
-- Messages it accepts:
--   {"type":"rename","name":"Bob"}
-- HTTP: GET /parties/presence/ROOM answers {"users":[...]}.
--
-- Several connections may share one id (PartySocket's `id`, i.e. `_pk`, for
-- example two tabs or a reconnect): that user joins once and leaves when the
-- last of them closes.
local json = require "cjson"
local luaparty = require "luaparty"
local Response = luaparty.Response
-- from the core: the same UTF-8 check and query parsing the server uses
local valid_utf8 = luaparty.validUtf8
local query_param = luaparty.queryParam

local MAX_NAME = 64 -- bytes

-- cjson encodes an empty table as {}: arrays are built by hand
local function encode_array(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = json.encode(v) end
  return "[" .. table.concat(parts, ",") .. "]"
end

-- true if s is valid UTF-8 (a browser drops a socket that receives bad text)

-- cuts s to at most max bytes without splitting a character
local function truncate(s, max)
  if #s <= max then return s end
  s = s:sub(1, max)
  while #s > 0 and not valid_utf8(s) do s = s:sub(1, -2) end
  return s
end



-- a clean display name, or nil
local function clean_name(name)
  if type(name) ~= "string" then return nil end
  name = name:gsub("[%c]", ""):match("^%s*(.-)%s*$")
  if name == "" or not valid_utf8(name) then return nil end
  return truncate(name, MAX_NAME)
end

local Presence = {}

-- everyone present, one entry per id, in arrival order
function Presence:users()
  local by_id, list = {}, {}
  for conn in self.room:getConnections() do
    local st = conn.state
    if st and not by_id[conn.id] then
      by_id[conn.id] = true
      list[#list + 1] = { id = conn.id, name = st.name, seq = st.seq }
    end
  end
  table.sort(list, function(a, b) return a.seq < b.seq end)
  for _, u in ipairs(list) do u.seq = nil end
  return list
end

-- how many open connections carry this id
function Presence:countId(id)
  local n = 0
  for conn in self.room:getConnections() do
    if conn.id == id then n = n + 1 end
  end
  return n
end

function Presence:onConnect(conn, ctx)
  self.seq = (self.seq or 0) + 1
  local name = clean_name(query_param(conn.uri or "", "name")) or conn.id
  -- a second connection of a known id keeps that user's name and place
  for other in self.room:getConnections() do
    if other ~= conn and other.id == conn.id and other.state then
      name = other.state.name
      break
    end
  end
  conn:setState({ name = name, seq = self.seq })
  local me = { id = conn.id, name = name }
  conn:send('{"type":"sync","self":' .. json.encode(me) .. ',"users":' .. encode_array(self:users()) .. "}")
  if self:countId(conn.id) == 1 then
    self.room:broadcast(json.encode({ type = "join", user = me }), { conn.id })
  end
end

function Presence:onClose(conn)
  -- conn is no longer among getConnections()
  if conn.state and self:countId(conn.id) == 0 then
    self.room:broadcast(json.encode({ type = "leave", user = { id = conn.id, name = conn.state.name } }))
  end
end

function Presence:onMessage(message, sender)
  local ok, msg = pcall(json.decode, tostring(message))
  if ok and type(msg) == "table" and msg.type == "rename" then
    local name = clean_name(msg.name)
    if not name then
      sender:send(json.encode({ type = "error", message = "rename: name must be a non-empty string" }))
      return
    end
    for conn in self.room:getConnections() do
      if conn.id == sender.id and conn.state then conn.state.name = name end
    end
    self.room:broadcast(json.encode({ type = "rename", user = { id = sender.id, name = name } }))
    return
  end
  sender:send(json.encode({ type = "error", message = 'unknown message: send {"type":"rename","name":"..."}' }))
end

function Presence:onRequest(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return Response.new("presence: GET only", { status = 405, headers = { allow = "GET, HEAD" } })
  end
  return Response.new('{"users":' .. encode_array(self:users()) .. "}",
    { headers = { ["content-type"] = "application/json" } })
end

return Presence
