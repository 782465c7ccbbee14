-- Benchmark party "commit": every WebSocket message is one storage write
-- (one commit) and is echoed back, which the output gate holds until the
-- write is durable: the echo's round trip is a commit's latency as a
-- client sees it (bench/cluster-storage.mjs). Keys cycle over 100, so the
-- room's data stays small.
local P = {}

function P:onStart() self.n = 0 end

function P:onMessage(message, sender)
  self.n = (self.n + 1) % 100
  self.room.storage:put("k" .. self.n, message)
  sender:send(message)
end

return P
