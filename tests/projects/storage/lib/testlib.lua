-- Helpers shared by the storage test parties (require "lib.testlib").
--
-- JSON cannot carry every Lua value (-0, inf, NUL bytes, invalid UTF-8,
-- number vs string keys), so commands address binary keys as {hex = "..."}
-- and return keys hex-encoded next to their (possibly mangled) text, and the
-- special-value checks compare inside Lua and return a verdict.
local json = require "cjson"
local Response = require("luaparty").Response

json.encode_sparse_array(true)
pcall(json.encode_number_precision, 17) -- older lua-cjson caps this at 14
json.encode_invalid_numbers(true)

local M = {}

function M.tohex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

function M.fromhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

--- A key or option from a JSON command: a string, or {hex = "..."}.
function M.bytes(v)
  if type(v) == "table" and v.hex then return M.fromhex(v.hex) end
  return v
end

local function keystr(k)
  if type(k) == "string" then return string.format("%q", k) end
  return string.format("[%s %.17g]", type(k), k)
end

local function numstr(n)
  if n ~= n then return "nan" end
  if n == 0 then return (1 / n < 0) and "-0" or "0" end
  return string.format("%.17g", n)
end
M.numstr = numstr

local function short(v)
  local t = type(v)
  if t == "number" then return numstr(v) end
  if t == "string" then
    if #v > 40 then return string.format("string(%d bytes, hex %s...)", #v, M.tohex(v:sub(1, 16))) end
    return "string hex " .. M.tohex(v)
  end
  return t .. " " .. tostring(v)
end
M.short = short

--- Deep equality that tells -0 from 0, and number keys from string keys.
--- Returns true, or false and where/why.
function M.deepEqual(a, b, path, depth)
  path = path or "value"
  depth = depth or 0
  if depth > 1000 then return false, path .. ": too deep" end
  if type(a) ~= type(b) then
    return false, string.format("%s: expected %s, got %s", path, short(a), short(b))
  end
  if type(a) == "number" then
    if a ~= a and b ~= b then return true end
    if a ~= b then return false, string.format("%s: expected %s, got %s", path, numstr(a), numstr(b)) end
    if a == 0 and (1 / a) ~= (1 / b) then
      return false, string.format("%s: expected %s, got %s (sign of zero)", path, numstr(a), numstr(b))
    end
    return true
  end
  if type(a) == "table" then
    for k, v in pairs(a) do
      local ok, why = M.deepEqual(v, rawget(b, k), path .. "[" .. keystr(k) .. "]", depth + 1)
      if not ok then return false, why end
    end
    for k in pairs(b) do
      if rawget(a, k) == nil then return false, path .. ": unexpected key " .. keystr(k) end
    end
    return true
  end
  if a ~= b then return false, string.format("%s: expected %s, got %s", path, short(a), short(b)) end
  return true
end

function M.reply(value, status)
  return Response.new(json.encode(value), {
    status = status or 200,
    headers = { ["content-type"] = "application/json" },
  })
end

function M.count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

--- The list() result as JSON: entries with key, keyHex, value, plus the keys
--- that entries:pairs() produced, in order.
function M.listResult(entries)
  local out, viaPairs = {}, {}
  for i = 1, #entries do
    local e = entries[i]
    out[i] = { key = e.key, keyHex = M.tohex(e.key), value = e.value }
  end
  local i = 0
  for k, v in entries:pairs() do
    i = i + 1
    viaPairs[#viaPairs + 1] = M.tohex(k)
    local e = entries[i]
    if not e or e.key ~= k or e.value ~= v then viaPairs[#viaPairs + 1] = "MISMATCH with entry " .. i end
  end
  return { entries = out, n = #entries, pairsKeysHex = viaPairs, isArray = (#entries == M.count(entries)) }
end

--- The generic command set, over self.room.storage.
function M.run(storage, cmd)
  local op = cmd.op
  if op == "get" then
    local v = storage:get(M.bytes(cmd.key))
    return { found = v ~= nil, value = v, luaType = type(v) }
  elseif op == "getMany" then
    local keys = {}
    for i, k in ipairs(cmd.keys) do keys[i] = M.bytes(k) end
    local t = storage:get(keys)
    local hexed = {}
    for k, v in pairs(t) do hexed[M.tohex(k)] = v end
    return { value = t, luaType = type(t), n = M.count(t), byHex = hexed }
  elseif op == "put" then
    storage:put(M.bytes(cmd.key), cmd.value)
    return { done = true }
  elseif op == "putMany" then
    storage:put(cmd.entries)
    return { done = true }
  elseif op == "delete" then
    local r = storage:delete(M.bytes(cmd.key))
    return { result = r, luaType = type(r) }
  elseif op == "deleteMany" then
    local keys = {}
    for i, k in ipairs(cmd.keys) do keys[i] = M.bytes(k) end
    local r = storage:delete(keys)
    return { result = r, luaType = type(r) }
  elseif op == "list" then
    local o = nil
    if cmd.options then
      o = {}
      for k, v in pairs(cmd.options) do o[k] = M.bytes(v) end
    end
    return M.listResult(storage:list(o))
  elseif op == "deleteAll" then
    storage:deleteAll()
    return { done = true }
  elseif op == "sync" then
    local r = storage:sync()
    return { done = true, luaType = type(r) }
  elseif op == "incr" then
    local n = (storage:get(cmd.key) or 0) + 1
    storage:put(cmd.key, n)
    return { value = n }
  elseif op == "setAlarm" then
    storage:setAlarm(cmd.at)
    return { done = true }
  elseif op == "getAlarm" then
    local a = storage:getAlarm()
    return { value = a, luaType = type(a), exact = a and string.format("%.0f", a) or nil }
  elseif op == "deleteAlarm" then
    storage:deleteAlarm()
    return { done = true }
  end
  return nil
end

return M
