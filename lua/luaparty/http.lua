-- luaparty.http: a room's HTTP requests, loaded by C for the room's first
-- one (src/lua_room.c; a room that never gets a request never loads it).
-- request(class, self, req) runs onRequest and turns its answer into
-- status, headers and body for C: in Lua, where reading the answer's
-- fields costs a fraction of what the C API would.
local core = require "luaparty.core"
-- the builtin, not the global the sandbox wraps (src/sandbox.c)
local getmetatable = core.getmetatable
local text_plain = "text/plain;charset=UTF-8"

-- The metatable of luaparty's Responses, once the luaparty module (init.lua)
-- loaded and left it in core: a party that never required it has none.
local response_mt

--- status, headers, body of what onRequest returned
local function normalize(res)
  local mt = getmetatable(res)
  response_mt = response_mt or rawget(core, "response_mt")
  -- a luaparty Response: headers are a table, or the content type alone
  if mt ~= nil and mt == response_mt then
    return res.status, rawget(res, "headers") or rawget(res, "_type"), res.body
  end
  if res == nil then return 204, {}, "" end
  if type(res) == "string" then return 200, { ["content-type"] = text_plain }, res end
  if type(res) == "table" and res.status then
    local r = require("luaparty").Response.new(res.body, res)
    return r.status, r.headers, r.body
  end
  error("onRequest must return a Response, a string or nil (got " .. type(res) .. ")", 0)
end

-- Once per request: no varargs.
local function request(class, self, req)
  local f = class.onRequest
  if not f then
    return 404, { ["content-type"] = text_plain }, "Party " .. self.room.name .. " has no onRequest"
  end
  return normalize(f(self, req))
end

return { request = request }
