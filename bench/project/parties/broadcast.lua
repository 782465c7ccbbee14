-- Benchmark party: send every message to everyone in the room but the sender.
local P = {}

function P:onMessage(m, sender)
  self.room:broadcast(m, { sender.id })
end

return P
