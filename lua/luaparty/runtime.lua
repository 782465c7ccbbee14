-- luaparty.runtime: the glue the C core calls for each room event.
--
-- C runs each of these functions in a fresh coroutine (see src/room.c):
--   init(class, info)            once, when the room's state is built
--   start()                      onStart
--   connect(h, id, uri, req)     getConnectionTags + onConnect
--   message(conn, msg)           onMessage
--   close(conn, code, err)       onError (if err) + onClose
--   request(req) -> status, headers, body     onRequest
--   socket_message / socket_close             socket events (luaparty/socket.lua)
--   hooks() / hook(kind, req, room_id)        static hooks (luaparty/hooks.lua)
-- Here the PartyKit objects (room, connection, request, storage) are built
-- on the small C API in luaparty.core. What most rooms never use (stubs for
-- other parties, sockets, static hooks, storage lists and transactions)
-- lives in modules loaded the first time a room needs them ("parts"): every
-- function costs each room's Lua state memory, and there can be 100,000
-- rooms (bench/rooms.mjs).
local core = require "luaparty.core"
-- The builtin, not the global the sandbox later wraps (src/sandbox.c: a
-- setmetatable on _G first opens the lazy libraries); this is the hot path.
local setmetatable = setmetatable
local luaparty = require "luaparty"
local cjson = luaparty._cjson -- cjson(), loaded on first use (init.lua)
local Response = luaparty.Response

local rt = {}

local instance          -- the party object: self in every callback
local party_info        -- id, name, env_json, parties (rt.init)
local lobby             -- this room is the party's lobby (id ""): rt.init
local class             -- the table the party script returned
local order = {}        -- open connections (array)
local pos = {}          -- connection -> index in order, so removal is O(1)

-- What the parts see of this module (kept up to date by init and reload).
local shared = {}

--- part(name): the functions of a part, loading it on first use. A part is
--- a module returning function(shared) -> its functions (or those directly).
local parts = {}
local function part(name)
  local p = parts[name]
  if not p then
    p = require(name)
    if type(p) == "function" then p = p(shared) end
    parts[name] = p
  end
  return p
end

---------------------------------------------------------------- requests
local Request = {}
-- req.headers is made the first time it is read, from the "name\0value\0"
-- string C left in req._headers (src/lua_request.c): most handlers never
-- read it, and each header made into a table entry costs every request.
Request.__index = function(req, k)
  if k ~= "headers" then return Request[k] end
  local h = core.headers(rawget(req, "_headers"))
  rawset(req, "_headers", nil)
  rawset(req, "headers", h)
  return h
end
shared.Request, shared.Response = Request, Response

function Request:text() return self.body end

--- req:query(name) -> the URL-decoded query parameter, or nil
function Request:query(name) return core.queryParam(self.url, name) end

function Request:json()
  local ok, value = pcall(cjson().decode, self.body)
  if not ok then error("request body is not valid JSON: " .. tostring(value), 2) end
  return value
end

---------------------------------------------------------------- connections
local Connection = {}
Connection.__index = Connection

--- conn:send(message): a string is sent as a text frame, a Binary as binary.
function Connection:send(message) return core.send(self._h, message) end

--- conn:close([code [, reason]])
function Connection:close(code, reason) core.close(self._h, code, reason) end

--- conn:setState(value or function(previous) -> value)
function Connection:setState(value)
  if type(value) == "function" then value = value(self.state) end
  self.state = value
  return value
end

Connection.__tostring = function(c) return "Connection(" .. c.id .. ")" end

---------------------------------------------------------------- storage
local Storage = {}
Storage.__index = Storage

--- storage:get(key) -> value; storage:get({k1, k2}) -> {k1 = v1, ...} (missing keys absent)
function Storage:get(key)
  if type(key) == "table" then
    local out = {}
    for _, k in ipairs(key) do out[k] = core.storage_get(k) end
    return out
  end
  return core.storage_get(key)
end

--- storage:put(key, value); storage:put({k1 = v1, ...}) writes them atomically:
--- if one value cannot be stored, none is written.
function Storage:put(key, value)
  if type(key) == "table" and value == nil then
    core.storage_txn_begin()
    local ok, err = pcall(function()
      for k, v in pairs(key) do
        if type(k) ~= "string" then error("storage:put({...}): keys must be strings", 0) end
        core.storage_put(k, v)
      end
    end)
    core.storage_txn_end(ok)
    if not ok then error(err, 2) end
    return
  end
  core.storage_put(key, value)
end

--- storage:delete(key) -> existed; storage:delete({k1, ...}) -> count deleted
function Storage:delete(key)
  if type(key) == "table" then
    local n = 0
    for _, k in ipairs(key) do if core.storage_delete(k) then n = n + 1 end end
    return n
  end
  return core.storage_delete(key)
end

-- The rest of the storage API (list, transaction, alarms, ...) is loaded
-- the first time a room uses it (luaparty/storage.lua): most rooms never
-- do, and each function costs every room's Lua state memory.
shared.Storage = Storage
setmetatable(Storage, { __index = function(_, k)
  setmetatable(Storage, nil)
  for name, f in pairs(part("luaparty.storage")) do Storage[name] = f end
  return rawget(Storage, k)
end })

---------------------------------------------------------------- room
local Room = {}
Room.__index = Room
-- room.env is decoded from the project's vars when first read (most rooms
-- never read it; decoding needs cjson). A reload that changes vars sets it.
local env
setmetatable(Room, { __index = function(_, k)
  if k ~= "env" then return nil end
  if env == nil then env = cjson().decode(party_info.env_json) end
  return env
end })

--- room:broadcast(message [, without_ids])
function Room:broadcast(message, without) core.broadcast(message, without) end

--- room:getConnection(id) -> an open connection with that id, or nil
function Room:getConnection(id)
  for i = 1, #order do
    local c = order[i]
    if c.id == id then return c end
  end
  return nil
end

--- for conn in room:getConnections([tag]) do ... end
function Room:getConnections(tag)
  local list, n = {}, 0
  for _, c in ipairs(order) do
    -- a connection's id is always one of its tags, as in PartyKit
    if tag == nil or tag == c.id or (c._tags and c._tags[tag]) then
      n = n + 1
      list[n] = c
    end
  end
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end
end

---------------------------------------------------------------- events
local function call(name, ...)
  local f = class[name]
  if f then return f(instance, ...) end
end

function rt.init(party_class, info)
  class = party_class
  party_info = info
  lobby = info.id == ""
  local room = setmetatable({
    id = info.id,
    name = info.name,
    storage = setmetatable({}, Storage),
    context = setmetatable({}, { __index = function(t, k)
      if k ~= "parties" then return nil end
      local parties = part("luaparty.parties").make(info.parties)
      rawset(t, "parties", parties)
      return parties
    end }),
  }, Room)
  -- Methods come from the class through __index, so a reload can swap them.
  instance = setmetatable({ room = room }, { __index = function(_, k) return class[k] end })
  shared.class, shared.instance, shared.info = class, instance, info
end

function rt.start() return call("onStart") end

--- A hot reload: chunk is the party's new code (or nil), env_json the new
--- room.env (or nil). The instance (self and its fields) and the connections
--- stay; only the methods change. onReload runs after the swap, and after a
--- new env alone too (a party that read a secret in onStart reads it again).
function rt.reload(chunk, env_json)
  if env_json then instance.room.env = cjson().decode(env_json) end
  if chunk then
    core.forget_project_modules() -- so they are required afresh
    local new = chunk()
    if type(new) ~= "table" then error("the party script must return a table of callbacks", 0) end
    class = new
    shared.class = new
  end
  return call("onReload")
end

function rt.alarm(retries)
  return call("onAlarm", { retryCount = retries, isRetry = retries > 0 })
end

-- The lobby (room id "") gets WebSockets for URLs outside the parties
-- (main party only): the static onSocket(conn, lobby) sets conn.onmessage /
-- conn.onclose handlers, as PartyKit's onSocket adds event listeners.
--- The lobby object of onSocket and the static hooks: fields (request or
--- id) plus the party's name, env and parties.
local function lobby_of(fields)
  fields.party, fields.env, fields.parties = party_info.name, instance.room.env, instance.room.context.parties
  return fields
end
shared.lobby_of = lobby_of

function rt.connect(h, id, uri, req)
  setmetatable(req, Request)
  local conn = setmetatable({ _h = h, id = id, uri = uri }, Connection)
  -- C passes this object to message and close, and sets conn.send: a C
  -- function bound to the handle, found in the table itself (a miss that
  -- goes on to __index is the interpreter's slow path, and a Lua method
  -- between would cost a call and two lookups, once per message).
  core.adopt(h, conn)
  local ctx = { request = req }
  order[#order + 1] = conn
  pos[conn] = #order
  if lobby then
    conn.request = req
    return class.onSocket(conn, lobby_of({ request = req }))
  end
  if class.getConnectionTags then
    local tags = class.getConnectionTags(instance, conn, ctx)
    if tags ~= nil then
      if type(tags) ~= "table" then error("getConnectionTags must return an array of strings", 0) end
      local set = {}
      for _, t in ipairs(tags) do
        if type(t) ~= "string" then error("getConnectionTags must return an array of strings", 0) end
        set[t] = true
      end
      conn._tags = set
    end
  end
  return call("onConnect", conn, ctx)
end

-- Once per message: no helper calls, no varargs. conn is the object
-- rt.connect made (C holds it), nil if the connection is already gone.
function rt.message(conn, message)
  if not conn then return end
  if lobby then
    if conn.onmessage then return conn.onmessage(message) end
    return
  end
  local f = class.onMessage
  if f then return f(instance, message, conn) end
end

local function forget(conn)
  local i, last = pos[conn], #order
  pos[conn] = nil
  if i ~= last then
    order[i] = order[last]
    pos[order[i]] = i
  end
  order[last] = nil
end

function rt.close(conn, code, err)
  if not conn then return end
  forget(conn)
  if lobby then
    if err ~= nil and conn.onerror then conn.onerror(err) end
    if conn.onclose then return conn.onclose(code) end
    return
  end
  if err ~= nil and class.onError then call("onError", conn, err) end
  return call("onClose", conn)
end

local response_mt = luaparty._response_mt

local function normalize(res)
  if getmetatable(res) == response_mt then -- headers: a table, or the content type alone (init.lua)
    return res.status, rawget(res, "headers") or rawget(res, "_type"), res.body
  end
  if res == nil then return 204, {}, "" end
  if type(res) == "string" then return 200, { ["content-type"] = "text/plain;charset=UTF-8" }, res end
  if type(res) == "table" and res.status then
    local r = Response.new(res.body, res)
    return r.status, r.headers, r.body
  end
  error("onRequest must return a Response, a string or nil (got " .. type(res) .. ")", 0)
end

-- Once per request, like rt.message: no varargs.
function rt.request(req)
  setmetatable(req, Request)
  local f = class.onRequest
  if not f then
    return 404, { ["content-type"] = "text/plain;charset=UTF-8" }, "Party " .. instance.room.name .. " has no onRequest"
  end
  return normalize(f(instance, req))
end

-- Entry points only some rooms need come from their parts on first call.
local entry_part = {
  socket_message = "luaparty.socket", socket_close = "luaparty.socket",
  hooks = "luaparty.hooks", hook = "luaparty.hooks",
}
setmetatable(rt, { __index = function(t, k)
  local name = entry_part[k]
  if not name then return nil end
  local f = part(name)[k]
  rawset(t, k, f)
  return f
end })

return rt
