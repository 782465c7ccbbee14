-- The Yjs update functions of the C side, over HTTP, for tests that compare
-- them with yjs's own (Y.mergeUpdates, Y.diffUpdate,
-- Y.encodeStateVectorFromUpdate). POST /parties/codec/x/<op>[?gc&coalesce]
-- with a body of length-prefixed byte strings (4-byte big-endian lengths).
local luaparty = require "luaparty"
local Response = luaparty.Response
local core = require("luaparty.core").yjs()

local function split(body)
  local out, i = {}, 1
  while i <= #body do
    local a, b, c, d = body:byte(i, i + 3)
    local n = ((a * 256 + b) * 256 + c) * 256 + d
    out[#out + 1] = body:sub(i + 4, i + 3 + n)
    i = i + 4 + n
  end
  return out
end

local P = {}
function P:onRequest(req)
  local op = req.url:match("/parties/codec/[^/]+/(%a+)")
  local args = split(req:text())
  local res, err
  if op == "merge" then
    res, err = core.merge(args, req:query("gc") ~= nil, req:query("coalesce") ~= nil)
  elseif op == "diff" then
    res, err = core.diff(args[1], args[2])
  elseif op == "sv" then
    res, err = core.stateVector(args[1])
  elseif op == "news" then
    local empty
    res, empty = core.news(args[1], args[2])
    if res and empty then res = "" end
    if not res then err = empty end
  else
    return Response.new("unknown op", { status = 404 })
  end
  if not res then return Response.new(err, { status = 422 }) end
  return Response.new(luaparty.binary(res), { headers = { ["content-type"] = "application/octet-stream" } })
end
return P
