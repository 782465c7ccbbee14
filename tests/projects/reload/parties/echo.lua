-- Template for tests/integration/reload.test.mjs (copied to a temp dir per
-- test; the tests rewrite it). Every reply starts with VERSION..":".
local VERSION = "v1"
local Response = require("luaparty").Response
local Echo = {}

function Echo:onMessage(message, sender)
  self.n = (self.n or 0) + 1
  if message == "n" then
    sender:send(VERSION .. ":n=" .. self.n)
  else
    sender:send(VERSION .. ":" .. tostring(message))
  end
end

function Echo:onRequest(req)
  local env = self.room.env or {}
  return Response.json({ version = VERSION, X = env.X, n = self.n or 0, reloads = self.reloads or 0 })
end

-- @extra

return Echo
