-- Text frames must be UTF-8: every way party code emits a text frame
-- refuses a string that is not, with an error naming luaparty.binary.
--   message "send" | "broadcast" | "close" | "pipe" | "connect":
--     tries that with a Latin-1 string and answers "sent" or "error: <msg>"
--   "binary": the same bytes as luaparty.binary: a binary frame
--   "unguarded": conn:send of the bad string, not in a pcall (a logged error)
-- onConnect with ?fail=bytes raises an error holding bytes that are not
-- UTF-8, ?fail=long one whose 123-byte cut falls inside a character: both
-- close the socket with 1011 and the error as reason.
local luaparty = require "luaparty"

local P = {}
local LATIN1 = "caf\233 cr\232me" -- "café crème" in Latin-1: not UTF-8

function P:onConnect(conn, ctx)
  local fail = conn.uri:match("[?&]fail=(%a+)")
  if fail == "bytes" then error("bad bytes \255\254 in an error") end
  if fail == "long" then error(string.rep("\195\169", 80), 0) end -- "é" x 80, no position: the cut at 123 is odd
  self.host = ctx.request.headers.host
end

local function try(sender, f)
  local ok, err = pcall(f)
  sender:send(ok and "sent" or "error: " .. tostring(err))
end

function P:onMessage(message, sender)
  if self.room.id == "other" then return end
  local cmd = tostring(message)
  if cmd == "send" then
    try(sender, function() sender:send(LATIN1) end)
  elseif cmd == "broadcast" then
    try(sender, function() self.room:broadcast(LATIN1) end)
  elseif cmd == "close" then
    try(sender, function() sender:close(4000, LATIN1) end)
  elseif cmd == "pipe" then
    local s = self.room.context.parties.main:get("other"):socket()
    try(sender, function() s:send(LATIN1) end)
    s:close()
  elseif cmd == "connect" then
    local s = luaparty.connect("ws://" .. self.host .. "/parties/main/other")
    try(sender, function() s:send(LATIN1) end)
    s:close()
  elseif cmd == "binary" then
    sender:send(luaparty.binary(LATIN1))
  elseif cmd == "unguarded" then
    sender:send(LATIN1)
  else
    sender:send("echo " .. cmd)
  end
end

return P
