-- The lightest party: echoes every message (many idle sockets, floods).
local P = {}

function P:onMessage(message, sender)
  sender:send(message)
end

return P
