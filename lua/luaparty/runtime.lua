-- luaparty.runtime: the glue the C core calls for each room event.
--
-- C runs each of these functions in a fresh coroutine (see src/room.c):
--   init(class, info)            once, when the room's state is built
--   start()                      onStart
--   connect(h, id, uri, req)     getConnectionTags + onConnect
--   message(conn, msg)           onMessage
--   close(conn, code, err)       onError (if err) + onClose
--   alarm(retries)               onAlarm
--   request(req) -> status, headers, body     onRequest
--   reload(chunk, env_json)                   hot reload (luaparty/room.lua)
--   socket_message / socket_close             socket events (luaparty/socket.lua)
--   hooks() / hook(kind, req, room_id)        static hooks (luaparty/hooks.lua)
-- Here the PartyKit objects (room, connection, request, storage) are built
-- on the small C API in luaparty.core. This file holds what every room with
-- a WebSocket runs; the rest lives in modules loaded the first time a room
-- needs them ("parts"): HTTP requests and responses, room.storage, the
-- room's lists of connections and hot reload, stubs for other parties,
-- sockets, static hooks. Every function costs each room's Lua state memory,
-- and there can be 100,000 rooms (bench/rooms.mjs).
local core = require "luaparty.core"
-- The builtins, not the globals the sandbox later wraps (src/sandbox.c: a
-- setmetatable on _G first opens the lazy libraries, getmetatable of a
-- string the string library); this is the hot path.
local setmetatable = setmetatable
local rt = {}

local instance          -- the party object: self in every callback
local party_info        -- id, name, env_json, parties (rt.init)
local lobby             -- this room is the party's lobby (id ""): rt.init
local class             -- the table the party script returned
local order = {}        -- open connections (array)
local pos = {}          -- connection -> index in order, so removal is O(1)

-- What the parts see of this module (kept up to date by init and reload).
local shared = { order = order, getmetatable = getmetatable }

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

--- lazy(t, name, key): t's missing fields come from part(name)[key], copied
--- into t the first time one is looked up.
local function lazy(t, name, key)
  return setmetatable(t, { __index = function(_, k)
    setmetatable(t, nil)
    for n, f in pairs(part(name)[key]) do t[n] = f end
    return rawget(t, k)
  end })
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

-- Its methods (text, query, json) come with the part that answers requests.
lazy(Request, "luaparty.http", "Request")
shared.Request = Request

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
-- Every method (luaparty/storage.lua; get, put and delete are C functions)
-- comes with the part, loaded by the first call.
shared.Storage = lazy(Storage, "luaparty.storage", "Storage")

---------------------------------------------------------------- room
local Room = {}
Room.__index = Room

--- room:broadcast(message [, without_ids])
function Room:broadcast(message, without) core.broadcast(message, without) end

-- Made when first read: room.storage, room.context (its parties: stubs for
-- the rooms of other parties), room.env (decoded from the project's vars,
-- which needs cjson; a reload that changes them sets it) and the methods
-- of luaparty/room.lua (getConnection, getConnections).
local env
setmetatable(Room, { __index = function(_, k)
  if k == "env" then
    if env == nil then env = require("cjson").decode(party_info.env_json) end
    return env
  end
  local room = instance.room
  if k == "storage" then
    rawset(room, k, setmetatable({}, Storage))
  elseif k == "context" then
    rawset(room, k, setmetatable({}, { __index = function(t, key)
      if key ~= "parties" then return nil end
      local parties = part("luaparty.parties").make(party_info.parties)
      rawset(t, "parties", parties)
      return parties
    end }))
  elseif k == "getConnection" or k == "getConnections" then
    local f = part("luaparty.room").Room[k]
    rawset(Room, k, f)
    return f
  end
  return rawget(room, k)
end })

---------------------------------------------------------------- events
local function call(name, ...)
  local f = class[name]
  if f then return f(instance, ...) end
end

function rt.init(party_class, info)
  class = party_class
  party_info = info
  lobby = info.id == ""
  local room = setmetatable({ id = info.id, name = info.name }, Room)
  -- Methods come from the class through __index, so a reload can swap them.
  instance = setmetatable({ room = room }, { __index = function(_, k) return class[k] end })
  shared.class, shared.instance, shared.info = class, instance, info
  rt.init = nil -- runs once: its code need not stay in the room's memory
end

-- luaparty/room.lua's reload swaps the class.
function shared.set_class(new)
  class = new
  shared.class = new
end
shared.call = call

function rt.start() return call("onStart") end

function rt.alarm(retries)
  return call("onAlarm", { retryCount = retries, isRetry = retries > 0 })
end

-- Loaded here, in the coroutine C runs this in, so a failure to load is the
-- callback's error like any other.
function rt.reload(chunk, env_json) return part("luaparty.room").reload(chunk, env_json) end

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

-- Once per request, like rt.message: no varargs. What turns the party's
-- answer into status, headers and body comes with the part that answers
-- requests (luaparty/http.lua), as do the request's methods.
local normalize
function rt.request(req)
  setmetatable(req, Request)
  normalize = normalize or part("luaparty.http").normalize
  local f = class.onRequest
  if not f then return normalize(nil, true) end
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
