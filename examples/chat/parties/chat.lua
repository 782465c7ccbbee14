-- chat.lua - the chat example: one chat per room, the last messages kept in storage.
--
-- Connect to ws://HOST/parties/main/ROOM. Messages are JSON text frames.
--   server -> client, on connect:  {"type":"history","messages":[msg, ...]}   (oldest first)
--   client -> server, first:       {"type":"hello","name":"Ann"}              ("join" works too)
--   server -> client:              {"type":"welcome","id":..,"name":..,"users":[{"id":..,"name":..}, ...]}
--   server -> the others:          {"type":"join","id":..,"name":..} / {"type":"leave","id":..,"name":..}
--   client -> server:              {"type":"message","text":"hi"}
--   server -> everyone in the room: {"type":"message","seq":n,"id":..,"name":..,"text":..,"ts":epoch ms}
--   server -> client:              {"type":"error","message":".."} when something is refused
-- HTTP GET /parties/main/ROOM answers {"messages":[...]}.
-- partykit.json "vars": CHAT_HISTORY is how many messages a room keeps (default 100).
local json = require "cjson"
local Response = require("luaparty").Response

local MAX_TEXT = 2000   -- bytes per message
local MAX_NAME = 32     -- bytes per name

-- cjson turns an empty table into {}: build JSON arrays by hand
local function array(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = json.encode(v) end
  return "[" .. table.concat(parts, ",") .. "]"
end

-- storage keys sort in message order
local function key(seq) return string.format("msg:%012d", seq) end

local Chat = {}

function Chat:onStart()
  self.cap = math.max(1, math.floor(tonumber(self.room.env.CHAT_HISTORY) or 100))
  self.seq = self.room.storage:get("seq") or 0
  self.history = {}
  local newest = self.room.storage:list({ prefix = "msg:", reverse = true, limit = self.cap })
  for i = #newest, 1, -1 do self.history[#self.history + 1] = newest[i].value end
end

function Chat:users()
  local list, seen = {}, {}
  for conn in self.room:getConnections() do
    if conn.state and conn.state.name and not seen[conn.id] then
      seen[conn.id] = true
      list[#list + 1] = { id = conn.id, name = conn.state.name }
    end
  end
  return list
end

function Chat:onConnect(conn)
  conn:send('{"type":"history","messages":' .. array(self.history) .. "}")
end

local function fail(conn, message)
  conn:send(json.encode({ type = "error", message = message }))
end

function Chat:onMessage(message, sender)
  local ok, msg = pcall(json.decode, tostring(message))
  if not ok or type(msg) ~= "table" then return fail(sender, "messages are JSON objects") end

  if msg.type == "hello" or msg.type == "join" then
    local name = type(msg.name) == "string" and msg.name:gsub("%c", ""):match("^%s*(.-)%s*$") or ""
    if name == "" or #name > MAX_NAME then return fail(sender, "a name is 1 to " .. MAX_NAME .. " characters") end
    local first = not (sender.state and sender.state.name)
    sender:setState({ name = name })
    sender:send('{"type":"welcome","id":' .. json.encode(sender.id) .. ',"name":' .. json.encode(name) ..
      ',"users":' .. array(self:users()) .. "}")
    if first then self.room:broadcast(json.encode({ type = "join", id = sender.id, name = name }), { sender.id }) end

  elseif msg.type == "message" then
    local name = sender.state and sender.state.name
    if not name then return fail(sender, 'say {"type":"hello","name":...} first') end
    local text = msg.text
    if type(text) ~= "string" or text:match("^%s*$") then return fail(sender, "empty message") end
    if #text > MAX_TEXT then return fail(sender, "messages are at most " .. MAX_TEXT .. " bytes") end
    self.seq = self.seq + 1
    local entry = { seq = self.seq, id = sender.id, name = name, text = text, ts = os.time() * 1000 }
    -- the message and the counter in one atomic write; the oldest one leaves the window
    self.room.storage:put({ seq = self.seq, [key(self.seq)] = entry })
    if self.seq > self.cap then self.room.storage:delete(key(self.seq - self.cap)) end
    self.history[#self.history + 1] = entry
    if #self.history > self.cap then table.remove(self.history, 1) end
    entry.type = "message"
    self.room:broadcast(json.encode(entry))
    entry.type = nil

  else
    fail(sender, "unknown message type " .. tostring(msg.type))
  end
end

function Chat:onClose(conn)
  if conn.state and conn.state.name and not self.room:getConnection(conn.id) then
    self.room:broadcast(json.encode({ type = "leave", id = conn.id, name = conn.state.name }))
  end
end

function Chat:onRequest(req)
  return Response.new('{"messages":' .. array(self.history) .. "}",
    { headers = { ["content-type"] = "application/json" } })
end

return Chat
