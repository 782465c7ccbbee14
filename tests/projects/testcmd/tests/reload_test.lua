-- Hot reload inside a test: the room and its connections stay.
local t = require "luaparty.test"

local v2 = [[
local P = {}
function P:onMessage(message, sender) sender:send("v2: " .. message) end
function P:onReload() self.room:broadcast("reloaded") end
return P
]]

t.test("new code reaches a live room without dropping its connections", function()
  local a = t.connect("main", "lobby")
  a:receive()
  a:send("x")
  t.eq(a:receive(), "echo: x")
  t.eq(t.reload("main", v2), true)
  t.eq(a:receive(), "reloaded")
  a:send("y")
  t.eq(a:receive(), "v2: y")
  t.ok(not a.closed)
end)

t.test("code that does not load is refused with its file:line; the old code stays", function()
  local a = t.connect("main", "lobby")
  a:receive()
  local ok, why = t.reload("main", "local P = {}\nP.x = (nil).y\nreturn P\n")
  t.eq(ok, false)
  t.match(why, "parties/main.lua:2:")
  a:send("x")
  t.eq(a:receive(), "echo: x")
end)

t.test("the next test runs the code on disk again", function()
  local a = t.connect("main", "lobby")
  a:receive()
  a:send("x")
  t.eq(a:receive(), "echo: x")
end)
