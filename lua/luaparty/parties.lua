-- luaparty.parties: room.context.parties, stubs for rooms of other
-- parties (stub:fetch, stub:socket), and the events of those sockets;
-- loaded the first time a room reaches for room.context.parties.
local core = require "luaparty.core"
local luaparty = require "luaparty"

return function(shared)
  local M = {}

  local Stub = {}
  Stub.__index = Stub

  --- stub:fetch([path,] [init]) -> Response. init = {method=, headers=, body=}
  function Stub:fetch(path, init)
    if type(path) == "table" then path, init = nil, path end
    init = init or {}
    local body = init.body
    if body ~= nil and type(body) ~= "string" and not core.isBinary(body) then
      error("fetch: body must be a string or Binary, got " .. type(body), 2)
    end
    local status, headers, text = core.fetch(self.party, self.id, init.method and init.method:upper() or "GET",
      path, init.headers, body)
    if not status then error(headers, 2) end
    return luaparty._response(status, headers, text)
  end

  --- stub:socket([path]) -> a socket: send, receive, close, onmessage, onclose
  --- In cluster mode the room may be another node's: then the socket is a
  --- WebSocket to that node (the caller waits for the answer of where).
  function Stub:socket(path)
    local s = require("luaparty.socket").Socket.new() -- loaded with the first socket
    local node, addr, hop = core.socket_where(self.party, self.id)
    if not node then error("socket to " .. self.party .. "/" .. self.id .. " failed: " .. addr, 2) end
    if node == true then
      s._h = core.socket_open(self.party, self.id, path, s)
    else
      s._h = core.socket_remote(node, addr, self.party, self.id, path, hop, s)
    end
    return s
  end

  --- The room.context.parties table of a room of a project with these parties.
  function M.make(names)
    local known = {}
    for _, n in ipairs(names) do known[n] = true end
    return setmetatable({}, {
      __index = function(t, name)
        if not known[name] then
          error("unknown party '" .. tostring(name) .. "' (this project has: " .. table.concat(names, ", ") .. ")", 2)
        end
        local party = {
          get = function(_, id)
            if type(id) ~= "string" or id == "" then error("get(id): id must be a non-empty string", 2) end
            return setmetatable({ party = name, id = id }, Stub)
          end,
        }
        rawset(t, name, party)
        return party
      end,
    })
  end

  return M
end
