-- onBeforeConnect / onBeforeRequest run before the room, as in a server.
local t = require "luaparty.test"

t.test("onBeforeConnect refuses without the token", function()
  local conn, res = t.tryConnect("guarded", "vault")
  t.eq(conn, nil)
  t.eq(res.status, 401)
  t.eq(res:text(), "unauthorized")
  t.error(function() t.connect("guarded", "vault") end, "refused: 401")
  t.ok(not t.loaded("guarded", "vault"), "a refused connection never starts the room")
end)

t.test("onBeforeConnect lets the token through with a header it adds", function()
  local a = t.connect("guarded", "vault", { query = { token = "secret" } })
  t.eq(a:receive(), "welcome user-vault")
end)

t.test("onBeforeRequest", function()
  t.eq(t.fetch("guarded", "vault").status, 403)
  local res = t.fetch("guarded", "vault", { headers = { authorization = "Bearer x" } })
  t.eq(res.status, 200)
  t.eq(res:text(), "ok Bearer x")
end)
