-- Benchmark party: echo every message back to its sender.
local P = {}

function P:onMessage(m, sender)
  sender:send(m)
end

return P
