local t = require "luaparty.test"

t.test("passes", function()
  t.eq(t.fetch("main", "x"):text(), "count 0")
end)

t.test("a wrong value", function()
  local res = t.fetch("main", "x")
  t.eq(res:text(), "count 1")
end)

t.test("party code raises", function()
  local a = t.connect("main", "x")
  a:send("hello")
  t.eq(a:receive(), "HELLO")
end)

t.test("the test itself raises", function()
  local nothing
  return nothing.field
end)

t.test("onClose raises when the test ends", function()
  t.connect("main", "x", { id = "grumpy" })
end)

t.test("tables differ deep inside", function()
  t.eq({ a = { 1, 2, { b = "x" } } }, { a = { 1, 2, { b = "y" } } })
end)
