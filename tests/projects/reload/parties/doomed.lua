-- A party the reload test removes from partykit.json; onClose is observable
-- in the server log.
local Doomed = {}

function Doomed:onConnect(conn)
  conn:send("doomed:hello")
end

function Doomed:onClose(conn)
  print("doomed onClose " .. conn.id)
end

return Doomed
