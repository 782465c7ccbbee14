local P = {}
function P:onRequest(req) return "got " .. #req:text() end
function P:onMessage(m, sender) sender:send(m) end
return P
