-- Not in partykit.json at first: the reload test adds it as party "fresh".
local Fresh = {}

function Fresh:onRequest(req)
  return "fresh:" .. self.room.id
end

return Fresh
