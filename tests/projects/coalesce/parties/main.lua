local P = {}
function P:onRequest(req)
  local n = tonumber(req.url:match("n=(%d+)")) or 1
  for i = 1, n do self.room.storage:put("k" .. i, i) end
  if req.url:find("suspend", 1, true) then
    -- a suspension ends the step: the writes so far commit, the rest later
    self.room.context.parties.peer:get("p"):fetch()
    for i = 1, n do self.room.storage:put("j" .. i, i) end
  end
  return "ok"
end
return P
