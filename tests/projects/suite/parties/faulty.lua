-- Test party "faulty": raises Lua errors on demand.
local P = {}

function P:onConnect(conn, ctx)
  if ctx.request.url:find("fail=1", 1, true) then
    error("connect exploded")
  end
end

function P:onMessage(msg, sender)
  if msg == "boom" then
    error("boom in onMessage")
  end
  sender:send("echo:" .. tostring(msg))
end

function P:onRequest(req)
  if req.url:find("/bad-broadcast", 1, true) then
    -- what a party is told when it calls room:broadcast wrongly
    local _, message = pcall(function() self.room:broadcast(123) end)
    local _, ids = pcall(function() self.room:broadcast("x", "not a table") end)
    return message .. "\n" .. ids
  end
  error("request exploded")
end

return P
