-- Storage: durable across a restart, fresh for every test, inspectable.
local t = require "luaparty.test"

t.test("a room restarts from its storage", function()
  t.fetch("counter", "c", { method = "POST", json = { kind = "x" } })
  t.fetch("counter", "c", { method = "POST", json = { kind = "x" } })
  local listener = t.connect("counter", "c")
  t.restart("counter", "c")
  t.eq(listener.closeCode, 1012)
  local res = t.fetch("counter", "c"):json()
  t.eq(res, { counts = { x = 2 }, starts = 2 })
end)

t.test("every test starts with empty storage", function()
  t.eq(t.storage("counter", "c"):get("counts"), nil)
  t.eq(t.fetch("counter", "c"):json().starts, 1)
end)

t.test("a test can look into storage and seed it", function()
  t.storage("counter", "seeded"):put("counts", { y = 41 })
  t.fetch("counter", "seeded", { method = "POST", json = { kind = "y" } })
  t.eq(t.storage("counter", "seeded"):get("counts"), { y = 42 })
  local keys = {}
  for _, e in ipairs(t.storage("counter", "seeded"):list()) do keys[#keys + 1] = e.key end
  t.eq(keys, { "counts", "starts" })
  t.eq(t.storage("counter", "seeded"):delete("counts"), true)
  t.eq(t.storage("counter", "seeded"):get("counts"), nil)
  t.error(function() t.storage("counter", "seeded"):put("f", print) end,
    "^tests/storage_test%.lua:%d+: storage:put%('f'%): cannot store a value of type function")
end)
