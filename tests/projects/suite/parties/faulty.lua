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
  error("request exploded")
end

return P
