-- luaparty.runtime: what rooms rarely need, loaded by C the first time a
-- room does (src/lua_room.c). What every room needs is C: self and
-- self.room, connection and request objects, and onStart, onConnect,
-- onMessage, onClose and onAlarm, which C calls itself when the party
-- class is a plain table. C runs these functions in the event's coroutine
-- instead, for the lobby and for a class with a metatable (whose lookups
-- may run party code, which must run under the room's limits):
--   start(), alarm(retries)   onStart, onAlarm
--   connect(conn, req)        the lobby's onSocket, or getConnectionTags + onConnect
--   message(conn, msg)        onMessage, or the lobby's sockets' onmessage
--   close(conn, code, err)    onError + onClose, or the lobby's sockets' onerror/onclose
--   room_field(name)          room.storage, room.context, room.env, made when first read
--   reload(chunk, env_json)   hot reload
--   socket_message / socket_close             socket events (luaparty/socket.lua)
--   hooks() / hook(kind, req, room_id)        static hooks (luaparty/hooks.lua)
-- The parts it loads on first use (storage, parties, sockets, hooks) see
-- the room through `shared`. Every function costs the memory of each room
-- that loads it, and there can be 100,000 rooms (bench/rooms.mjs).
local core = require "luaparty.core"
-- the builtins, not the globals the sandbox wraps (src/sandbox.c)
local setmetatable = core.setmetatable

local rt = {}

-- What the parts see of the room (the Request metatable, Storage,
-- lobby_of, and from C the party class and the room's info; a hot reload
-- swaps the class there).
local info
local shared = { Request = core.request_mt() }
setmetatable(shared, { __index = function(_, k)
  if k == "class" then return core.class() end
  if k == "info" then
    info = info or core.info()
    return info
  end
end })

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

local function call(name, ...)
  local f = core.class()[name]
  if f then return f(core.instance(), ...) end
end

---------------------------------------------------------------- storage
local Storage = {}
Storage.__index = Storage
-- Every method (luaparty/storage.lua; get, put and delete are C functions)
-- comes with the part, loaded by the first call.
setmetatable(Storage, { __index = function(_, k)
  setmetatable(Storage, nil)
  for n, f in pairs(part("luaparty.storage").Storage) do Storage[n] = f end
  return rawget(Storage, k)
end })
shared.Storage = Storage

---------------------------------------------------------------- room fields
-- room.env is decoded from the project's vars when first read (decoding
-- needs cjson); a reload that changes them sets it on the room.
local env
function rt.room_field(k)
  local room = core.instance().room
  if k == "env" then
    if env == nil then env = require("cjson").decode(shared.info.env_json) end
    return env
  end
  local v
  if k == "storage" then
    v = setmetatable({}, Storage)
  elseif k == "context" then
    v = setmetatable({}, { __index = function(t, key)
      if key ~= "parties" then return nil end
      local parties = part("luaparty.parties").make(shared.info.parties)
      rawset(t, "parties", parties)
      return parties
    end })
  end
  rawset(room, k, v)
  return v
end

---------------------------------------------------------------- the lobby, tags, onError
-- The lobby (room id "") gets WebSockets for URLs outside the parties
-- (main party only): the static onSocket(conn, lobby) sets conn.onmessage /
-- conn.onclose handlers, as PartyKit's onSocket adds event listeners.
--- The lobby object of onSocket and the static hooks: fields (request or
--- id) plus the party's name, env and parties.
local function lobby_of(fields)
  local room = core.instance().room
  fields.party, fields.env, fields.parties = shared.info.name, room.env, room.context.parties
  return fields
end
shared.lobby_of = lobby_of

local function lobby() return shared.info.id == "" end

function rt.connect(conn, req)
  local class = core.class()
  if lobby() then
    conn.request = req
    return class.onSocket(conn, lobby_of({ request = req }))
  end
  local ctx = { request = req }
  local get_tags = class.getConnectionTags
  local tags = get_tags and get_tags(core.instance(), conn, ctx)
  if get_tags and tags ~= nil then
    if type(tags) ~= "table" then error("getConnectionTags must return an array of strings", 0) end
    local set = {}
    for _, t in ipairs(tags) do
      if type(t) ~= "string" then error("getConnectionTags must return an array of strings", 0) end
      set[t] = true
    end
    conn._tags = set
  end
  return call("onConnect", conn, ctx)
end

function rt.message(conn, message)
  if not lobby() then return call("onMessage", message, conn) end
  if conn.onmessage then return conn.onmessage(message) end
end

function rt.start() return call("onStart") end

function rt.alarm(retries)
  return call("onAlarm", { retryCount = retries, isRetry = retries > 0 })
end

function rt.close(conn, code, err)
  if lobby() then
    if err ~= nil and conn.onerror then conn.onerror(err) end
    if conn.onclose then return conn.onclose(code) end
    return
  end
  if err ~= nil then call("onError", conn, err) end
  return call("onClose", conn)
end

---------------------------------------------------------------- hot reload
--- chunk is the party's new code (or nil), env_json the new room.env (or
--- nil). The instance (self and its fields) and the connections stay; only
--- the methods change. onReload runs after the swap, and after a new env
--- alone too (a party that read a secret in onStart reads it again).
function rt.reload(chunk, env_json)
  if env_json then core.instance().room.env = require("cjson").decode(env_json) end
  if chunk then
    core.forget_project_modules() -- so they are required afresh
    local new = chunk()
    if type(new) ~= "table" then error("the party script must return a table of callbacks", 0) end
    core.set_class(new)
  end
  return call("onReload")
end

---------------------------------------------------------------- sockets, static hooks
function rt.socket_message(...) return part("luaparty.socket").socket_message(...) end
function rt.socket_close(...) return part("luaparty.socket").socket_close(...) end
function rt.hooks(...) return part("luaparty.hooks").hooks(...) end
function rt.hook(...) return part("luaparty.hooks").hook(...) end

return rt
