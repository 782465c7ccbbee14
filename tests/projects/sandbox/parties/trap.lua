-- A class whose lookups run code: an error, or a loop, in its __index. C
-- must not look its callbacks up itself (outside the event's coroutine and
-- the room's limits): the lookup fails the event, or trips the CPU limit,
-- and the server serves on.
return setmetatable({}, { __index = function(_, k)
  if k == "onMessage" then error("no onMessage today") end
  if k == "onClose" then while true do end end
end })
