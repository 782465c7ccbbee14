local P = {}
function P:onRequest(req)
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
