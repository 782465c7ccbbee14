-- Rooms share nothing mutable: every room's state has its own copies of
-- what C makes once per state (the Request, Connection and room
-- metatables, the libraries). One room breaks all of them; another room
-- of the same party must not notice.
local P = {}
function P:onRequest(req)
  if req:query("act") == "break" then
    getmetatable(req).text = function() return "broken" end
    getmetatable(self.room).__index.getConnections = nil
    getmetatable(self.room).__index.broadcast = function() error("broken") end
    string.upper = function() return "broken" end
    table.concat = nil
    local core = package.loaded["luaparty.core"]
    if core then core.broadcast = nil end
    return "broken"
  end
  local n = 0
  for _ in self.room:getConnections() do n = n + 1 end
  self.room:broadcast("nobody listens")
  return table.concat({ req:text(), ("ok"):upper(), tostring(n) }, "|")
end
function P:onConnect(conn)
  if conn.uri:find("break", 1, true) then
    getmetatable(conn).close = nil
    getmetatable(conn).__tostring = function() return "broken" end
    conn.send = nil
    return
  end
  conn:send(tostring(conn) .. "|" .. type(getmetatable(conn).close))
end
return P
