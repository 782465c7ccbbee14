-- HTTP through the server's routing: rooms, static files, onFetch, 404s.
local t = require "luaparty.test"

t.test("a request reaches onRequest with method, headers and body", function()
  local res = t.fetch("main", "lobby", { method = "post", path = "/sub?x=1", headers = { ["X-Test"] = "yes" }, body = "data" })
  t.eq(res.status, 200)
  t.ok(res.ok)
  t.eq(res.headers["content-type"], "application/json")
  t.eq(res:json(), { method = "POST", body = "data", url = "http://127.0.0.1:1999/parties/main/lobby/sub?x=1", header = "yes" })
end)

t.test("json bodies, and any URL", function()
  local res = t.fetch("/parties/main/lobby", { method = "PUT", json = { a = 1 } })
  t.eq(res:json().body, '{"a":1}')
  t.eq(t.fetch("/party/lobby"):json().method, "GET") -- the main party's short URL
end)

t.test("static files, onFetch and unknown parties answer as in a server", function()
  local page = t.fetch("/")
  t.eq(page.status, 200)
  t.match(page:text(), "<title>testcmd</title>")
  t.eq(t.fetch("/not/a/party"):text(), "fetched /not/a/party")
  local missing = t.fetch("nope", "x")
  t.eq(missing.status, 404)
  t.eq(missing:text(), "Party nope not found")
end)

t.test("HEAD gets the headers without the body", function()
  local res = t.fetch("main", "lobby", { method = "HEAD" })
  t.eq(res.status, 200)
  t.eq(res.body, "")
end)
