-- Echo party for the partysocket tests: tells each client its id and the
-- query parameters the server saw, echoes messages, answers HTTP with what
-- it received.
local json = require "cjson"
local Response = require("luaparty").Response

local function url_decode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function query(url)
  local out = {}
  local q = url:match("%?([^#]*)")
  if q then
    for pair in q:gmatch("[^&]+") do
      local k, v = pair:match("^([^=]*)=?(.*)$")
      out[url_decode(k)] = url_decode(v)
    end
  end
  return out
end

local P = {}

function P:onConnect(conn, ctx)
  self.connects = (self.connects or 0) + 1
  conn:send(json.encode({ type = "welcome", id = conn.id, room = self.room.id, party = self.room.name,
    query = query(conn.uri), connects = self.connects }))
end

function P:onMessage(message, sender)
  sender:send(json.encode({ type = "echo", id = sender.id, data = tostring(message) }))
end

function P:onRequest(req)
  return Response.json({ method = req.method, url = req.url, room = self.room.id, party = self.room.name,
    query = query(req.url), body = req:text() or "", contentType = req.headers["content-type"] })
end

return P
