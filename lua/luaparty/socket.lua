-- luaparty.socket: a socket as a room sees it, to another room
-- (room.context.parties.x:get(id):socket()) or to the network
-- (luaparty.connect), and the runtime's handlers for its events. Loaded the
-- first time a room opens one.
local core = require "luaparty.core"

local M = {}

local Socket = {}
Socket.__index = Socket
M.Socket = Socket

function Socket.new() return setmetatable({ _queue = { first = 1, last = 0 }, closed = false }, Socket) end

function Socket:send(message) return core.socket_send(self._h, message) end

function Socket:close(code, reason)
  if self.closed then return end
  self.closed = true
  core.socket_close(self._h, code, reason)
  core.socket_release(self._h)
end

--- socket:receive([timeout_ms]) -> message, or nil, "closed" / "timeout"
--- (after "closed", a third value may say why). Suspends the callback.
function Socket:receive(timeout)
  local q = self._queue
  if q.first <= q.last then
    local m = q[q.first]
    q[q.first] = nil
    q.first = q.first + 1
    return m
  end
  local m, err, reason, code = core.socket_wait(self._h, timeout)
  if m == nil and err == "closed" then
    -- closed now, in this callback already (the close event comes later)
    self.closed = true
    self.closeCode = self.closeCode or code
    self.closeReason = self.closeReason or reason
    return nil, "closed", self.closeReason
  end
  return m, err
end

--- luaparty.connect(url [, options]) (init.lua documents it)
function M.connect(url, options)
  if type(url) ~= "string" then error("connect(url [, options]): url must be a string", 2) end
  options = options or {}
  local s = Socket.new()
  s._h = core.ws_connect(url, options.headers, s)
  return s
end

function M.socket_message(s, message)
  if s.onmessage then
    s.onmessage(message)
  elseif not core.socket_handoff(s._h, message) then -- else a receive() was waiting: it has it
    local q = s._queue
    q.last = q.last + 1
    q[q.last] = message
  end
end

function M.socket_close(s, reason, code)
  s.closed = true
  s.closeCode = code
  s.closeReason = reason
  core.socket_release(s._h)
  if s.onclose then s.onclose(code) end
end

return M
