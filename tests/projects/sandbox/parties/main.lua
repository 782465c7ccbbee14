local P = {}
function P:onRequest(req)
  -- math, bit, os and debug are opened on first use (src/sandbox.c): each
  -- mode runs first in a fresh room
  if req:query("lazy") == "global" then
    local before = rawget(_G, "os") == nil
    return table.concat({
      tostring(before), math.floor(2.5), bit.band(6, 3), type(os.time()), type(os.exit), type(os.getenv),
      tostring(rawequal(math, require "math")), tostring(rawequal(package.loaded.bit, bit)),
      tostring(rawequal(os, require "os")), type(debug.traceback), type(debug.getinfo),
      tostring(rawequal(debug, require "debug")), tostring(nosuchglobal),
    }, "|")
  end
  if req:query("lazy") == "strings" then
    -- string and table open on first use too: a string's method, the
    -- strings' metatable, the globals and require all see the same tables
    local before = tostring(rawget(_G, "string") == nil) .. tostring(rawget(_G, "table") == nil)
    local s = ("ab"):rep(2)
    return table.concat({
      before, s, tostring(rawequal(getmetatable("").__index, string)), tostring(rawequal(string, require "string")),
      tostring(rawequal(table, require "table")), tostring(rawequal(package.loaded.string, string)),
      ("%d-%s"):format(7, "x"), tostring(#"four"), tostring(("x"):len()),
    }, "|")
  end
  if req:query("lazy") == "metatable" then
    -- getmetatable("") before any string method: the library's metatable
    local mt = getmetatable("")
    return tostring(type(mt.__index)) .. "|" .. tostring(rawequal(mt.__index, string)) .. "|" .. mt.__index.upper("q")
  end
  if req:query("lazy") == "runtime" then
    -- the luaparty module and the global fetch are loaded on first use too
    -- (src/sandbox.c, lua/luaparty/runtime.lua): a fresh room answering a
    -- request has loaded neither
    local before = { tostring(rawget(_G, "fetch") == nil), tostring(package.loaded["luaparty"] == nil),
                     tostring(package.loaded["luaparty.storage"] == nil) }
    local f = fetch
    local after = { type(f), tostring(rawequal(f, require("luaparty").fetch)), tostring(rawget(_G, "fetch") == f),
                    type(self.room.storage.get), tostring(package.loaded["luaparty.storage"] ~= nil) }
    return table.concat(before, "|") .. "|" .. table.concat(after, "|")
  end
  if req:query("lazy") == "nopackage" then
    -- a party that drops the package global still gets its libraries
    package = nil
    return table.concat({ math.floor(2.5), type(os.time()), type(debug.traceback) }, "|")
  end
  if req:query("lazy") == "strict" then
    -- a strict-mode metatable on _G replaces the lazy __index: the libraries
    -- must still be there
    setmetatable(_G, { __index = function(_, k) error("undefined global " .. k, 2) end,
                       __newindex = function(_, k) error("new global " .. k, 2) end })
    local ok, err = pcall(function() return undefined_thing end)
    return table.concat({ math.max(1, 7), bit.bor(1, 2), type(os.clock), type(os.execute), type(debug.traceback),
                          tostring(ok), tostring(err):match("undefined global [%w_]+") }, "|")
  end
  if req:query("load") then
    -- load and loadstring take source, never bytecode (src/sandbox.c)
    local dumped = string.dump(function() return 41 end)
    local f1, e1 = load(dumped)
    local f2, e2 = loadstring(dumped, "=dumped")
    local pieces = { dumped }
    local f3, e3 = load(function() return table.remove(pieces, 1) end, "=reader")
    local f4 = load("return 1 + ...", "=src")
    local f5, e5 = loadstring("return +", "=bad")
    local env = { x = 7 }
    local f6 = load("return x", "=env", "t", env)
    return table.concat({ tostring(f1), e1, tostring(f2), e2, tostring(f3), e3, f4(1), tostring(f5), e5, f6() }, "|")
  end
  if req:query("helpers") then
    local luaparty = require "luaparty"
    return table.concat({
      tostring(luaparty.validUtf8("héllo")), tostring(luaparty.validUtf8("\xff\xfe")),
      tostring(req:query("name")), tostring(req:query("missing")),
      tostring(luaparty.queryParam("http://x/p?a=1&b=two%20words", "b")),
    }, "|")
  end
  local out = {}
  for _, name in ipairs({ "ffi", "io", "jit", "jit.opt", "os", "debug", "string", "cjson", "luaparty", "bit", "table", "math", "coroutine" }) do
    local ok, m = pcall(require, name)
    local keys = {}
    if ok and type(m) == "table" then for k in pairs(m) do keys[#keys + 1] = k end end
    table.sort(keys)
    out[#out + 1] = name .. "=" .. (ok and (type(m) .. (name == "debug" and ("[" .. table.concat(keys, ",") .. "]") or "")) or "ERR")
  end
  out[#out + 1] = "io=" .. type(io) .. " jit=" .. type(jit) .. " os.exit=" .. type(os.exit) .. " loadfile=" .. type(loadfile)
  return table.concat(out, " ")
end
return P
