-- luaparty.room: what a room needs now and then, loaded the first time it
-- does: room:getConnection / room:getConnections, and a hot reload.
local core = require "luaparty.core"

return function(shared)
  local order = shared.order
  local M = { Room = {} }
  local Room = M.Room

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

  --- A hot reload: chunk is the party's new code (or nil), env_json the new
  --- room.env (or nil). The instance (self and its fields) and the connections
  --- stay; only the methods change. onReload runs after the swap, and after a
  --- new env alone too (a party that read a secret in onStart reads it again).
  function M.reload(chunk, env_json)
    if env_json then shared.instance.room.env = require("cjson").decode(env_json) end
    if chunk then
      core.forget_project_modules() -- so they are required afresh
      local new = chunk()
      if type(new) ~= "table" then error("the party script must return a table of callbacks", 0) end
      shared.set_class(new)
    end
    return shared.call("onReload")
  end

  return M
end
