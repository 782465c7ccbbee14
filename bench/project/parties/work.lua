-- Benchmark party: some Lua work for every message (a loop of 2,000 steps,
-- about 35 µs with the JIT off), then the echo. A room whose time goes to
-- party code rather than to the network: there, more workers pay off even
-- on a machine whose load generator shares the cores (bench/run.sh, scaling).
local P = {}

function P:onMessage(m, sender)
  local h = 0
  for i = 1, 2000 do h = (h * 31 + i) % 1000003 end
  self.last = h -- kept, so the loop's result is used
  sender:send(m)
end

return P
