-- No hooks; calls main through the cross-party API, which skips them as in PartyKit.
local P = {}
function P:onRequest(req)
  local res = self.room.context.parties.main:get("r1"):fetch()
  return "via stub: " .. res.status .. " " .. res:text()
end
return P
