-- The seed project's tests: `luaparty test examples/multiparty`. The main
-- party counts its connections in the "connections" party with a real
-- cross-party fetch.
local t = require "luaparty.test"

t.test("connections are counted per room in the connections party", function()
  local a = t.connect("main", "lobby")
  local b = t.connect("main", "lobby")
  local c = t.connect("main", "kitchen")
  t.eq(t.fetch("connections", "active-connections"):json(), { lobby = 2, kitchen = 1 })
  b:close()
  c:close()
  t.eq(t.fetch("connections", "active-connections"):json(), { lobby = 1, kitchen = 0 })
end)

t.test("a listener of the connections party hears every change", function()
  local listener = t.connect("connections", "active-connections")
  t.connect("main", "lobby")
  t.eq(listener:receiveJson(), { lobby = 1 })
end)

t.test("the counts are durable", function()
  t.connect("main", "lobby")
  t.restart("connections", "active-connections")
  t.eq(t.storage("connections", "active-connections"):get("connections"), { lobby = 1 })
  t.eq(t.fetch("connections", "active-connections"):json(), { lobby = 1 })
end)
