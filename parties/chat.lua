-- chat.lua - chat rooms with a message history kept in storage.
--
-- Reusable party: name it in any project's partykit.json, e.g.
--   "parties": { "chat": "../../parties/chat.lua" },
--   "vars": { "CHAT_HISTORY": 100 }
-- and connect to ws://HOST/parties/chat/ROOM (optionally ?name=Alice).
--
-- Settings (partykit.json "vars", read through room.env):
--   CHAT_HISTORY      how many messages a room keeps (default 100, 1..10000);
--                     older ones are deleted from storage
--   CHAT_MAX_LENGTH   longest message text in bytes (default 2000)
--
-- Messages it accepts (JSON text frames):
--   {"type":"hello","name":"Alice"}  (or "join") names this connection; a
--        `name` query parameter does the same at connect time
--   {"type":"message","text":"hi"}   a chat message (needs a name first);
--        a frame that is not JSON is taken as the text of a message
-- Messages it sends:
--   {"type":"history","messages":[msg, ...]}   on connect: the stored history, oldest first
--   {"type":"welcome","id":..,"name":..}       answer to hello/join
--   {"type":"join","id":..,"name":..}          to the others when someone gets a name
--   {"type":"leave","id":..,"name":..}         when a named connection closes
--   {"type":"message", ...msg}                 to everyone (the sender too) for each message
--   {"type":"error","message":".."}            to a client whose message was refused
-- where msg is {"seq":n,"id":connection id,"name":..,"text":..,"ts":epoch ms}.
-- HTTP: GET /parties/chat/ROOM answers {"messages":[...]};
--       POST {"name":..,"text":..} adds a message (e.g. from a bot) and answers it.
local json = require "cjson"
local luaparty = require "luaparty"
local Response = luaparty.Response
-- from the core: the same UTF-8 check and query parsing the server uses
local valid_utf8 = luaparty.validUtf8
local query_param = luaparty.queryParam

local PREFIX = "msg:"

local function key_of(seq) return PREFIX .. string.format("%012d", seq) end




local function clean_name(name)
  if type(name) ~= "string" then return nil end
  name = name:gsub("%c", ""):match("^%s*(.-)%s*$")
  if name == "" or #name > 64 or not valid_utf8(name) then return nil end
  return name
end

-- cjson encodes an empty table as {}: arrays are built by hand
local function encode_array(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = json.encode(v) end
  return "[" .. table.concat(parts, ",") .. "]"
end

local function setting(env, key, default, lo, hi)
  local v = tonumber(env and env[key])
  if not v then return default end
  return math.max(lo, math.min(hi, math.floor(v)))
end

local Chat = {}

function Chat:onStart()
  self.cap = setting(self.room.env, "CHAT_HISTORY", 100, 1, 10000)
  self.maxLength = setting(self.room.env, "CHAT_MAX_LENGTH", 2000, 1, 65536)
  local storage = self.room.storage
  self.seq = storage:get("seq") or 0
  -- forget what is older than the window (the cap may have shrunk)
  local first = self.seq - self.cap + 1
  if first > 1 then
    local old = {}
    for k in storage:list({ prefix = PREFIX, ["end"] = key_of(first) }):pairs() do old[#old + 1] = k end
    if #old > 0 then storage:delete(old) end
  end
  self.history = {}
  for _, v in storage:list({ prefix = PREFIX, start = key_of(math.max(first, 1)) }):pairs() do
    self.history[#self.history + 1] = v
  end
end

-- stores and broadcasts one message; returns it, or nil and why
function Chat:post(id, name, text)
  if type(text) ~= "string" or text == "" then return nil, "text must be a non-empty string" end
  if #text > self.maxLength then return nil, "text is longer than " .. self.maxLength .. " bytes" end
  if not valid_utf8(text) then return nil, "text is not valid UTF-8" end
  self.seq = self.seq + 1
  local msg = { seq = self.seq, id = id, name = name, text = text, ts = os.time() * 1000 }
  -- the new message and the counter in one write; the oldest leaves the window
  self.room.storage:put({ seq = self.seq, [key_of(self.seq)] = msg })
  if self.seq > self.cap then self.room.storage:delete(key_of(self.seq - self.cap)) end
  self.history[#self.history + 1] = msg
  while #self.history > self.cap do table.remove(self.history, 1) end
  local out = { type = "message" }
  for k, v in pairs(msg) do out[k] = v end
  self.room:broadcast(json.encode(out))
  return msg
end

function Chat:onConnect(conn, ctx)
  local name = clean_name(query_param(conn.uri or "", "name"))
  conn:setState({ name = name })
  conn:send('{"type":"history","messages":' .. encode_array(self.history) .. "}")
  if name then self.room:broadcast(json.encode({ type = "join", id = conn.id, name = name }), { conn.id }) end
end

function Chat:onMessage(message, sender)
  local text = tostring(message)
  local ok, msg = pcall(json.decode, text)
  if not ok or type(msg) ~= "table" then msg = { type = "message", text = text } end
  local state = sender.state or {}
  if msg.type == "hello" or msg.type == "join" then
    local name = clean_name(msg.name)
    if not name then
      return sender:send(json.encode({ type = "error", message = "hello: name must be 1 to 64 characters" }))
    end
    local first = state.name == nil
    sender:setState({ name = name })
    sender:send(json.encode({ type = "welcome", id = sender.id, name = name }))
    if first then self.room:broadcast(json.encode({ type = "join", id = sender.id, name = name }), { sender.id }) end
  elseif msg.type == "message" then
    if not state.name then
      return sender:send(json.encode({ type = "error", message = 'say {"type":"hello","name":...} first' }))
    end
    local _, err = self:post(sender.id, state.name, msg.text)
    if err then sender:send(json.encode({ type = "error", message = err })) end
  else
    sender:send(json.encode({ type = "error", message = "unknown message type: " .. tostring(msg.type) }))
  end
end

function Chat:onClose(conn)
  if conn.state and conn.state.name then
    self.room:broadcast(json.encode({ type = "leave", id = conn.id, name = conn.state.name }))
  end
end

function Chat:onRequest(req)
  if req.method == "GET" or req.method == "HEAD" then
    return Response.new('{"messages":' .. encode_array(self.history) .. "}",
      { headers = { ["content-type"] = "application/json" } })
  elseif req.method == "POST" then
    local ok, body = pcall(req.json, req)
    if not ok or type(body) ~= "table" then return Response.json({ error = "body must be JSON" }, { status = 400 }) end
    local name = clean_name(body.name)
    if not name then return Response.json({ error = "name must be 1 to 64 characters" }, { status = 400 }) end
    local msg, err = self:post("http", name, body.text)
    if not msg then return Response.json({ error = err }, { status = 400 }) end
    return Response.json(msg, { status = 201 })
  end
  return Response.new("chat: GET or POST", { status = 405, headers = { allow = "GET, HEAD, POST" } })
end

return Chat
