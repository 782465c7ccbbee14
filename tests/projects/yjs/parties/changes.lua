-- onChange: each call is counted, and the update it got is kept in storage,
-- both readable at GET ?changes
local Response = require("luaparty").Response
local P = require("luaparty.yjs").party({
  debounceWait = 300, debounceMaxWait = 1500,
  onChange = function(self, update)
    local n = (self.room.storage:get("changes") or 0) + 1
    self.room.storage:put({ changes = n, last = update })
  end,
})
local yjs_request = P.onRequest
function P:onRequest(req)
  if req:query("changes") then
    local last = self.room.storage:get("last") or ""
    return Response.json({ calls = self.room.storage:get("changes") or 0,
      last = (last:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) })
  end
  return yjs_request(self, req)
end
return P
