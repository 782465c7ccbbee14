-- bench/storage.mjs: N puts (one callback: one coalesced commit), then N gets.
local P = {}

function P:onRequest(req)
  local op = req.url:match("op=(%a+)")
  local n = tonumber(req.url:match("n=(%d+)"))
  local value = string.rep("x", tonumber(req.url:match("bytes=(%d+)")))
  local storage = self.room.storage
  if op == "put" then
    for i = 1, n do storage:put("k" .. i, value) end
    return "ok"
  end
  local total = 0
  for i = 1, n do total = total + #storage:get("k" .. i) end
  return tostring(total)
end

return P
