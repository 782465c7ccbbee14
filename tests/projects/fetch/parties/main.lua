-- Drives outbound fetch for tests/integration/fetch.test.mjs.
-- GET  -> "pong" (a cheap request to prove the room and the server stay responsive).
-- POST -> a JSON command {op=, url=, method=, headers=, body=, timeout=, ...};
--         answers JSON {ok, status, headers, body, length} or {error = message}.
local json = require "cjson"
local luaparty = require "luaparty"
local Response = luaparty.Response

local P = {}

local function to_hex(s)
  return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

local function init_of(cmd)
  if cmd.method == nil and cmd.headers == nil and cmd.body == nil and cmd.bodyBytes == nil
      and cmd.timeout == nil then
    return nil -- fetch(url) with no init table at all
  end
  local body = cmd.body
  if cmd.bodyBytes then -- binary-safe body: an array of byte values
    local t = {}
    for i, b in ipairs(cmd.bodyBytes) do t[i] = string.char(b) end
    body = luaparty.binary(table.concat(t))
  end
  return { method = cmd.method, headers = cmd.headers, body = body, timeout = cmd.timeout }
end

local function describe(res, cmd)
  local out = { ok = res.ok, status = res.status, headers = res.headers, length = #res:text() }
  if cmd.hex then out.hex = to_hex(res:text())
  elseif not cmd.lengthOnly then out.body = res:text() end
  if cmd.decode then out.json = res:json() end
  return out
end

local ops = {}

-- one fetch
function ops.fetch(cmd)
  local f = cmd.via == "module" and luaparty.fetch or fetch
  local ok, res = pcall(f, cmd.url, init_of(cmd))
  if not ok then return { error = tostring(res) } end
  return describe(res, cmd)
end

-- n sequential fetches of the same URL in this one callback
function ops.seq(cmd)
  local statuses, errors = {}, {}
  for i = 1, cmd.n do
    local ok, res = pcall(fetch, cmd.url, init_of(cmd))
    if ok then statuses[#statuses + 1] = res.status else errors[#errors + 1] = tostring(res) end
  end
  return { statuses = statuses, errors = errors }
end

-- fetch inside storage:transaction
function ops.txn(cmd, room)
  local ok, err = pcall(function()
    room.storage:transaction(function(txn)
      txn:put("k", "v")
      fetch(cmd.url)
    end)
  end)
  return { error = not ok and tostring(err) or nil, stored = room.storage:get("k") }
end

-- fetch from a coroutine the script created itself
function ops.coroutine(cmd)
  local ok, err = coroutine.wrap(function() return pcall(fetch, cmd.url) end)()
  return { error = not ok and tostring(err) or nil }
end

-- the global and the module function are the same thing
function ops.same()
  return { same = (fetch == luaparty.fetch), kind = type(fetch) }
end

function P:onRequest(req)
  if req.method ~= "POST" then return "pong" end
  local cmd = req:json()
  local op = ops[cmd.op or "fetch"]
  if not op then return Response.new("unknown op", { status = 400 }) end
  return Response.json(op(cmd, self.room))
end

return P
