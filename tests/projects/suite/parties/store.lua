-- Test party "store": storage get/put/delete over HTTP.
-- POST {"op":"put"|"get"|"delete", "key": k, "value": v}
local json = require "cjson"
local Response = require("luaparty").Response

local P = {}

function P:onRequest(req)
  local c = req:json()
  local storage = self.room.storage
  if c.op == "put" then
    storage:put(c.key, c.value)
    return Response.json({ ok = true })
  elseif c.op == "delete" then
    storage:delete(c.key)
    return Response.json({ ok = true })
  elseif c.op == "get" then
    local v = storage:get(c.key)
    if v == nil then
      return Response.json({ found = false })
    end
    return Response.json({ found = true, value = v, luaType = type(v) })
  end
  return Response.new("bad op", { status = 400 })
end

return P
