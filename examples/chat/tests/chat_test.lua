-- The chat example's tests: `luaparty test examples/chat`.
local t = require "luaparty.test"

local function join(room, name)
  local conn = t.connect("main", room, { id = name:lower() })
  t.eq(conn:receiveJson().type, "history")
  conn:send('{"type":"hello","name":"' .. name .. '"}')
  t.eq(conn:receiveJson().type, "welcome")
  return conn
end

t.test("a newcomer gets the history, then a welcome listing who is here", function()
  local ann = join("lobby", "Ann")
  local bob = t.connect("main", "lobby", { id = "bob" })
  t.eq(bob:receiveJson(), { type = "history", messages = {} })
  bob:send('{"type":"hello","name":"Bob"}')
  local welcome = bob:receiveJson()
  t.eq(welcome.users, { { id = "ann", name = "Ann" }, { id = "bob", name = "Bob" } })
  t.eq(ann:receiveJson(), { type = "join", id = "bob", name = "Bob" })
end)

t.test("a message reaches everyone, stamped with the (virtual) time", function()
  local ann, bob = join("lobby", "Ann"), join("lobby", "Bob")
  ann:receive() -- Bob joined
  t.advance(1500)
  ann:send('{"type":"message","text":"hello"}')
  local expected = { type = "message", seq = 1, id = "ann", name = "Ann", text = "hello", ts = 1735689601000 }
  t.eq(ann:receiveJson(), expected)
  t.eq(bob:receiveJson(), expected)
end)

t.test("the history is kept in storage and survives a restart", function()
  local ann = join("lobby", "Ann")
  ann:send('{"type":"message","text":"one"}')
  ann:send('{"type":"message","text":"two"}')
  t.restart("main", "lobby")
  t.eq(ann.closeCode, 1012)
  local texts = {}
  for _, m in ipairs(t.fetch("main", "lobby"):json().messages) do texts[#texts + 1] = m.text end
  t.eq(texts, { "one", "two" })
  t.eq(t.storage("main", "lobby"):get("seq"), 2)
end)

t.test("bad input gets an error message and changes nothing", function()
  local ann = t.connect("main", "lobby", { id = "ann" })
  ann:receive()
  ann:send("not json")
  t.eq(ann:receiveJson(), { type = "error", message = "messages are JSON objects" })
  ann:send('{"type":"message","text":"hi"}')
  t.match(ann:receiveJson().message, "say .*hello.* first")
  t.eq(t.storage("main", "lobby"):get("seq"), nil)
end)

t.test("leaving is announced to the others", function()
  local ann, bob = join("lobby", "Ann"), join("lobby", "Bob")
  ann:receive()
  bob:close()
  t.eq(ann:receiveJson(), { type = "leave", id = "bob", name = "Bob" })
end)
