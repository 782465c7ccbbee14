-- Static hooks (PartyKit's onBeforeConnect / onBeforeRequest / onFetch):
-- they run before the room is touched, with a dot, not a colon: no self.
local Response = require("luaparty").Response
local P = {}

-- token in the query, as browsers cannot set WebSocket headers
function P.onBeforeConnect(req, lobby)
  local token = req.url:match("[?&]token=([^&]+)")
  if token == nil then error("missing token") end
  if token ~= "secret-" .. lobby.id then return Response.new("bad token", { status = 403 }) end
  req.headers["x-user-id"] = "user:" .. lobby.id
  return req
end

function P.onBeforeRequest(req, lobby)
  if req.headers["authorization"] ~= "Bearer ok" then
    return Response.json({ error = "unauthorized", room = lobby.id, party = lobby.party }, { status = 401 })
  end
  req.headers["x-checked"] = "yes"
  if req.url:find("bad-header", 1, true) then req.headers["x-bad"] = "two\nlines" end
  if req.url:find("bad-name", 1, true) then req.headers["a\0b"] = "c" end
  return req
end

function P.onFetch(req, lobby)
  if req.url:find("/hello", 1, true) then return Response.new("hello from onFetch") end
  if req.url:find("/status.json", 1, true) then return Response.json({ up = true }) end
  -- nil: 404
end

-- WebSockets to URLs outside the parties (like onFetch for HTTP)
function P.onSocket(conn, lobby)
  conn:send("hello from onSocket at " .. lobby.request.url:match("//[^/]+(/[^?]*)"))
  conn.onmessage = function(message)
    conn:send("lobby echo: " .. tostring(message))
  end
  conn.onclose = function(code)
    print("onSocket connection closed " .. tostring(code))
  end
end

function P:onConnect(conn, ctx)
  self.room.storage:put("connects", (self.room.storage:get("connects") or 0) + 1)
  conn:send("welcome " .. tostring(ctx.request.headers["x-user-id"]))
end

function P:onRequest(req)
  return Response.json({ checked = req.headers["x-checked"], connects = self.room.storage:get("connects") or 0 })
end

return P
