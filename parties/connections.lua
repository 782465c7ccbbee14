-- connections.lua - live connection counts per room, for a lobby page.
--
-- The seed project's counter (examples/multiparty), generalized. Name it in
-- partykit.json, e.g. "parties": { "connections": "../../parties/connections.lua" },
-- and let the party whose rooms are counted report to one room of it (the
-- seed's main party reports to "active-connections"):
--
--   local counter = self.room.context.parties.connections:get("active-connections")
--   counter:fetch({ method = "POST", body = json.encode({
--     type = "connect", roomId = self.room.id, connectionId = conn.id }) })
--
-- HTTP:
--   POST {"type":"connect"|"disconnect","roomId":..[,"party":..][,"connectionId":..]}
--        counts one connection in or out of a room, broadcasts the new counts
--        and answers them (as the seed does)
--   POST {"type":"reset"}   forgets every count (e.g. from a deploy hook)
--   GET  the counts: {"<room>": n, ...}
-- WebSocket: a client connecting to the room gets the counts at once, then
--   the counts again (the same JSON object) after every change.
--
-- Counts are keyed by roomId, or by "party/roomId" when a `party` other than
-- "main" is given. They never go below zero; a room that drops to zero stays
-- listed with 0 unless CONNECTIONS_DROP_EMPTY is set in "vars". Counts are kept in
-- storage, so they survive a restart of the server; the connections do not,
-- which is why "reset" exists.
local json = require "cjson"
local Response = require("luaparty").Response

local Counter = {}

function Counter:counts()
  self.connections = self.connections or self.room.storage:get("connections") or {}
  return self.connections
end

function Counter:encoded() return json.encode(self:counts()) end

function Counter:update(update)
  local counts = self:counts()
  if type(update) ~= "table" then return nil, "the body must be a JSON object" end
  if update.type == "reset" then
    self.connections = {}
  else
    if update.type ~= "connect" and update.type ~= "disconnect" then
      return nil, 'type must be "connect", "disconnect" or "reset"'
    end
    if type(update.roomId) ~= "string" and type(update.roomId) ~= "number" then
      return nil, "roomId must be a string"
    end
    local key = tostring(update.roomId)
    if type(update.party) == "string" and update.party ~= "main" then key = update.party .. "/" .. key end
    local count = counts[key] or 0
    if update.type == "connect" then count = count + 1 else count = math.max(0, count - 1) end
    if count == 0 and self.room.env.CONNECTIONS_DROP_EMPTY then count = nil end
    counts[key] = count
  end
  -- notify any connected listeners, then save
  self.room:broadcast(self:encoded())
  self.room.storage:put("connections", self.connections)
  return true
end

function Counter:onConnect(conn)
  conn:send(self:encoded())
end

function Counter:onRequest(request)
  if request.method == "POST" then
    local ok, update = pcall(request.json, request)
    local done, err = self:update(ok and update or nil)
    if not done then return Response.json({ error = err }, { status = 400 }) end
  elseif request.method ~= "GET" and request.method ~= "HEAD" then
    return Response.new("connections: GET or POST", { status = 405, headers = { allow = "GET, HEAD, POST" } })
  end
  return Response.new(self:encoded(), { headers = { ["content-type"] = "application/json" } })
end

return Counter
