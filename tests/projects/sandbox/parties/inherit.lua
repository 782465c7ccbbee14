-- Callbacks found through the class's metatable (a base class), and one
-- set to false: the runtime module looks them up, in the event's coroutine
-- (src/lua_room.c: a lookup through a metatable may run party code).
local Base = {}
function Base:onConnect(conn, ctx)
  conn:send("hello " .. conn.id .. " from " .. tostring(ctx.request.url):match("/parties/.*$"))
end
function Base:onMessage(msg, conn)
  conn:send(table.concat({ "echo", msg, tostring(self.room.id),
    tostring(package.loaded["luaparty.runtime"] ~= nil) }, "|"))
end
function Base:onRequest(req)
  return "base " .. req.method .. " " .. req:text()
end
local P = setmetatable({ onClose = false }, { __index = Base })
return P
