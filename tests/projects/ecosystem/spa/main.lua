-- A single-page app project: every path that is not a file or a party gets index.html.
local P = {}
function P:onRequest(req) return "party " .. self.room.id end
return P
