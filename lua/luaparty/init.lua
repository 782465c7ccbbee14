-- luaparty: the module party scripts require.
--
--   local luaparty = require "luaparty"
--   local Response = luaparty.Response
--
-- Response.new(body [, {status=, headers=}]), Response.json(value [, init]),
-- luaparty.binary(str) / luaparty.isBinary(v) for binary WebSocket messages.
local core = require "luaparty.core"
-- The builtins, not the globals the sandbox wraps (src/sandbox.c: a
-- setmetatable on _G first opens the lazy libraries, a string's getmetatable
-- the string library); this is the hot path (Response.json).
local setmetatable, getmetatable = core.setmetatable, core.getmetatable
-- cjson is loaded on first use: a room that never touches JSON saves ~5 KB.
local cjson_module
local function require_cjson()
  cjson_module = require "cjson"
  return cjson_module
end
local function cjson()
  return cjson_module or require_cjson()
end

local M = {}

M.binary = core.binary
M.isBinary = core.isBinary
--- luaparty.validUtf8(s) -> true if s is well-formed UTF-8
M.validUtf8 = core.validUtf8
--- luaparty.queryParam(url, name) -> the URL-decoded value, or nil
M.queryParam = core.queryParam

-- Response.new / Response.json are constructors; a response's own methods
-- (res:text(), res:json()) live in a separate metatable, as in JavaScript
-- where Response.json is static and response.json() a method.
local Response = {}
local response_methods = {}
-- A Response.json(value) answer keeps only its content type (_type) until
-- its headers are read: most are returned as they are, and the runtime hands
-- C the type alone (runtime.lua: normalize), without a headers table made,
-- walked and collected for every request.
local response_mt = { __index = function(res, k)
  if k ~= "headers" then return response_methods[k] end
  local t = rawget(res, "_type")
  if t == nil then return nil end
  local h = { ["content-type"] = t }
  rawset(res, "_type", nil)
  rawset(res, "headers", h)
  return h
end }
M.Response = Response
core.response_mt = response_mt -- what luaparty.http recognises onRequest's Response by

local function lower_headers(headers, level)
  local out = {}
  if headers == nil then return out end
  if type(headers) ~= "table" then error("headers must be a table of name = value", level + 1) end
  for k, v in pairs(headers) do
    if type(k) ~= "string" then error("header names must be strings", level + 1) end
    if type(v) ~= "string" and type(v) ~= "number" then
      error("header '" .. k .. "' must be a string, got " .. type(v), level + 1)
    end
    out[k:lower()] = tostring(v)
  end
  return out
end

-- A response from checked parts: Response.new's, and a fetch's answer
-- (luaparty.fetch and stub:fetch), whose parts C checked.
function M._response(status, headers, body)
  return setmetatable({ status = status, headers = headers, body = body, ok = status >= 200 and status < 300 },
    response_mt)
end

--- Response.new(body [, init]): body is a string, a Binary or nil;
--- init is {status = 200, headers = {...}}.
function Response.new(body, init)
  init = init or {}
  if type(init) ~= "table" then error("Response.new: init must be a table", 2) end
  if body == nil then
    body = ""
  elseif core.isBinary(body) then
    body = body:bytes()
  elseif type(body) ~= "string" then
    error("Response.new: body must be a string, a Binary or nil, got " .. type(body), 2)
  end
  local status = init.status or 200
  if type(status) ~= "number" or status < 100 or status > 999 or status % 1 ~= 0 then
    error("Response.new: status must be an integer from 100 to 999", 2)
  end
  local headers = lower_headers(init.headers, 2)
  if headers["content-type"] == nil and body ~= "" then
    headers["content-type"] = "text/plain;charset=UTF-8"
  end
  return M._response(status, headers, body)
end

--- True if v was made by Response.new / Response.json (or returned by fetch).
function Response.is(v) return getmetatable(v) == response_mt end

--- Response.json(value [, init]): a JSON response.
function Response.json(value, init)
  if init == nil then -- the common case, built directly: it runs per request
    return setmetatable({ status = 200, _type = "application/json", body = cjson().encode(value), ok = true },
                        response_mt)
  end
  local headers = lower_headers(init.headers, 2)
  headers["content-type"] = headers["content-type"] or "application/json"
  return Response.new(cjson().encode(value), { status = init.status, headers = headers })
end

function response_methods:text() return self.body end

function response_methods:json()
  local ok, value = pcall(cjson().decode, self.body)
  if not ok then error("response body is not valid JSON: " .. tostring(value), 2) end
  return value
end

--- luaparty.connect(url [, {headers = {...}}]) -> a socket (ws:// or wss://):
--- send(msg), receive([timeout_ms]), close([code, reason]), onmessage, onclose;
--- s.closeCode / s.closeReason say why it closed. (luaparty/socket.lua, loaded
--- on first use.)
function M.connect(url, options) return require("luaparty.socket").connect(url, options) end

--- luaparty.fetch(url [, {method=, headers=, body=, timeout=}]) -> Response
--- Outbound HTTP(S); suspends only the calling callback. Also the global fetch.
function M.fetch(url, init)
  if type(url) ~= "string" then error("fetch(url [, init]): url must be a string", 2) end
  init = init or {}
  if type(init) ~= "table" then error("fetch(url [, init]): init must be a table", 2) end
  local body = init.body
  if body ~= nil and type(body) ~= "string" and not core.isBinary(body) then
    error("fetch: body must be a string or Binary, got " .. type(body), 2)
  end
  local status, headers, text = core.http_fetch(url, init.method and init.method:upper() or "GET",
    init.headers, body, init.timeout)
  if not status then error(headers, 2) end
  return M._response(status, headers, text)
end

return M
