-- luaparty.http: requests and their answers, loaded by the runtime for a
-- room's first HTTP request (or the first call of a request's methods):
-- the methods of a request (text, query, json) and turning what onRequest
-- returned into status, headers and body for C. The luaparty module
-- (init.lua) is not loaded for that: a party that never requires it cannot
-- have made a Response.
local core = require "luaparty.core"

return function(shared)
  local getmetatable = shared.getmetatable -- the builtin (runtime.lua)
  local M = { Request = {} }
  local Request = M.Request

  function Request:text() return self.body end

  --- req:query(name) -> the URL-decoded query parameter, or nil
  function Request:query(name) return core.queryParam(self.url, name) end

  function Request:json()
    local ok, value = pcall(require("cjson").decode, self.body)
    if not ok then error("request body is not valid JSON: " .. tostring(value), 2) end
    return value
  end

  --- status, headers, body of what onRequest returned (missing: the party
  --- has no onRequest).
  function M.normalize(res, missing)
    local mt = getmetatable(res)
    if mt ~= nil and mt == core.response_mt then -- headers: a table, or the content type alone (init.lua)
      return res.status, rawget(res, "headers") or rawget(res, "_type"), res.body
    end
    if missing then
      return 404, { ["content-type"] = "text/plain;charset=UTF-8" },
        "Party " .. shared.instance.room.name .. " has no onRequest"
    end
    if res == nil then return 204, {}, "" end
    if type(res) == "string" then return 200, { ["content-type"] = "text/plain;charset=UTF-8" }, res end
    if type(res) == "table" and res.status then
      local r = require("luaparty").Response.new(res.body, res)
      return r.status, r.headers, r.body
    end
    error("onRequest must return a Response, a string or nil (got " .. type(res) .. ")", 0)
  end

  return M
end
