-- Test party "hub": calls many rooms of "main" from one callback, so the
-- calls cross workers (rooms are placed by a hash of their id).
--   GET /parties/hub/<id>/fetch?n=N   -> POSTs to main rooms w-1..w-N, then
--                                        GETs them; answers their views
--   GET /parties/hub/<id>/socket?n=N  -> opens a socket to each of those
--                                        rooms, sends "echo <i>", collects
--                                        the answers, closes them
local json = require "cjson"
local Response = require("luaparty").Response

local P = {}

local function count(url)
  return tonumber(url:match("[?&]n=(%d+)") or "10")
end

function P:onRequest(req)
  local main = self.room.context.parties.main
  local n = count(req.url)
  local out = {}
  if req.url:find("/fetch", 1, true) then
    for i = 1, n do
      local stub = main:get("w-" .. i)
      local r1 = stub:fetch({ method = "POST" })
      local r2 = stub:fetch("/")
      out[i] = { post = r1.status, view = r2:json() }
    end
  elseif req.url:find("/socket", 1, true) then
    local socks = {}
    for i = 1, n do
      socks[i] = main:get("s-" .. i):socket()
      socks[i]:send("echo " .. i)
    end
    for i = 1, n do
      local m, err = socks[i]:receive(3000)
      out[i] = m or ("error: " .. tostring(err))
      socks[i]:close()
    end
  end
  return Response.json(out)
end

return P
