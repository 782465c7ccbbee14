-- Test party "recur": GET /parties/recur/<room>/<n> fetches the other room
-- ("a" <-> "b") with n-1 until n == 0, so a -> b -> a -> ... nests while each
-- room is still waiting for its own fetch.
local P = {}

function P:onRequest(req)
  local path = req.url:match("^%a+://[^/]+(/[^?#]*)") or req.url
  local n = tonumber(path:match("/(%d+)$") or "0")
  if n == 0 then
    return self.room.id
  end
  local other = (self.room.id == "a") and "b" or "a"
  local res = self.room.context.parties.recur:get(other):fetch("/" .. (n - 1))
  return self.room.id .. ">" .. res:text()
end

return P
