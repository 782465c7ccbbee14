-- What onRequest may return, and what it may not (src/lua_room.c,
-- lua/luaparty/runtime.lua).
local P = {}
function P:onRequest(req)
  local what = req:query("what")
  if what == "nil" then return nil end
  if what == "string" then return "a string" end
  if what == "table" then return { status = 202, body = "a plain table", headers = { ["X-Kind"] = "table" } } end
  if what == "response" then return require("luaparty").Response.json({ ok = true }) end
  if what == "number" then return 42 end
  if what == "runtime" then
    local before = package.loaded["luaparty.runtime"] == nil
    local s = self.room.storage
    return tostring(before) .. "|" .. tostring(package.loaded["luaparty.runtime"] ~= nil) .. "|" .. type(s.get)
  end
  if what == "json" then
    local ok, err = pcall(req.json, req)
    return tostring(ok) .. "|" .. tostring(err):gsub("^[^:]+:%d+: ", "")
  end
  return "?"
end
return P
