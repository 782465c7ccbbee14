-- Benchmark party (bench/attacks.mjs): "spin" runs away (a loop that only
-- the CPU limit stops); anything else is echoed.
local P = {}

function P:onMessage(m, sender)
  if m == "spin" then
    while true do end
  end
  sender:send(m)
end

return P
