-- guarded: only token=secret may connect; requests need an authorization header.
local Response = require("luaparty").Response

local Guarded = {}

function Guarded.onBeforeConnect(req, lobby)
  if req:query("token") ~= "secret" then return Response.new("unauthorized", { status = 401 }) end
  req.headers["x-user-id"] = "user-" .. lobby.id
  return req
end

function Guarded.onBeforeRequest(req, lobby)
  if not req.headers["authorization"] then return Response.new("who are you?", { status = 403 }) end
end

function Guarded:onConnect(conn, ctx)
  conn:send("welcome " .. ctx.request.headers["x-user-id"])
end

function Guarded:onRequest(req)
  return "ok " .. req.headers["authorization"]
end

return Guarded
