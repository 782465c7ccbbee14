-- A plain class: C calls its callbacks itself, without the runtime module
-- (src/lua_room.c).
local P = {}
function P:onConnect(conn) conn:send("hi " .. conn.id) end
function P:onMessage(msg, conn)
  conn:send(msg .. "|" .. tostring(package.loaded["luaparty.runtime"] ~= nil))
end
return P
