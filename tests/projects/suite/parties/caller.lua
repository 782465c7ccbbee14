-- Test party "caller": exercises cross-party fetch() and socket() on the
-- "main" party, driven by HTTP requests to /parties/caller/<room>/<action>.
local json = require "cjson"
local Response = require("luaparty").Response

local P = {}

local function action(url)
  local path = url:match("^%a+://[^/]+(/[^?#]*)") or url
  return path:match("^/parties/caller/[^/]+/(.*)$") or ""
end

local function target(self, room)
  return self.room.context.parties.main:get(room)
end

local function nz(v)
  if v == nil then return json.null end
  return v
end

local actions = {}

function actions.fetch(self, req)
  local stub = target(self, "fetch-target")
  local r1 = stub:fetch("/status/418")
  local r2 = stub:fetch("/json")
  local r3 = stub:fetch("/echo/path?x=1", { method = "POST", headers = { ["x-from"] = "caller" }, body = "payload" })
  local r4 = stub:fetch({ method = "POST", body = "table-only" })
  local r5 = stub:fetch("/nil")
  local j3 = r3:json()
  local j4 = r4:json()
  return Response.json({
    s1 = r1.status, h1 = nz(r1.headers["x-custom"]), t1 = r1:text(),
    s2 = r2.status, ct2 = nz(r2.headers["content-type"]), j2 = r2:json(),
    s3 = r3.status, method3 = j3.method, url3 = j3.url, from3 = nz(j3.headers["x-from"]), body3 = j3.body,
    s4 = r4.status, method4 = j4.method, url4 = j4.url, body4 = j4.body,
    s5 = r5.status, t5 = r5:text(),
  })
end

function actions.socket(self, req)
  local ws = target(self, "sock-target"):socket()
  local hello, e1 = ws:receive(3000)
  ws:send("ping")
  local echo, e2 = ws:receive(3000)
  ws:send(json.encode({ cmd = "broadcast", msg = "from-caller" }))
  local b, e3 = ws:receive(3000)
  ws:close()
  return Response.json({
    hello = nz(hello), e1 = nz(e1), echo = nz(echo), e2 = nz(e2), b = nz(b), e3 = nz(e3),
  })
end

function actions.timeout(self, req)
  local ws = target(self, "sock-timeout"):socket()
  local hello = ws:receive(3000)
  local none, terr = ws:receive(200)
  ws:send("still open")
  local echo, e2 = ws:receive(3000)
  ws:close()
  return Response.json({ hello = nz(hello), none = nz(none), terr = nz(terr), echo = nz(echo), e2 = nz(e2) })
end

function actions.closed(self, req)
  local ws = target(self, "sock-closed"):socket()
  local hello = ws:receive(3000)
  ws:send(json.encode({ cmd = "close", code = 4001, reason = "bye" }))
  local m, err = ws:receive(3000)
  return Response.json({ hello = nz(hello), m = nz(m), err = nz(err) })
end

function actions.listen(self, req)
  local ws = target(self, "listen-target"):socket()
  self.received = self.received or {}
  ws.onmessage = function(msg)
    self.received[#self.received + 1] = tostring(msg)
  end
  self.ws = ws
  return "listening"
end

function actions.received(self, req)
  return Response.json({ n = #(self.received or {}), all = table.concat(self.received or {}, "\n") })
end

function P:onRequest(req)
  local a = actions[action(req.url)]
  if not a then
    return Response.new("no such action", { status = 400 })
  end
  return a(self, req)
end

return P
