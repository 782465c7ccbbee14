-- Test party "inspect": replies to every message with a JSON description of
-- what Lua received (binary or text, length, bytes as hex).
local luaparty = require "luaparty"
local json = require "cjson"

local P = {}

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function try(f)
  local ok, v = pcall(f)
  if ok then return v end
  return "error: " .. tostring(v)
end

function P:onMessage(msg, sender)
  local isBin = luaparty.isBinary(msg)
  sender:send(json.encode({
    isBinary = isBin,
    luaType = type(msg),
    len = try(function() return #msg end),
    hexBytes = try(function() return hex(isBin and msg:bytes() or msg) end),
    hexTostring = try(function() return hex(tostring(msg)) end),
    stringIsBinary = luaparty.isBinary("plain string"),
    roundTrip = try(function() return luaparty.isBinary(luaparty.binary("x")) end),
  }))
end

return P
