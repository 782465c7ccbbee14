-- Benchmark party: a small JSON answer to every HTTP request.
local Response = require("luaparty").Response

local P = {}

function P:onRequest(req)
  return Response.json({ ok = true, room = self.room.id })
end

return P
