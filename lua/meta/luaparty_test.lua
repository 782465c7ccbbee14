---@meta luaparty.test
-- Type stubs for lua-language-server: the API of test files run by
-- `luaparty test` (local t = require "luaparty.test"). Not loaded at run time.

---@class luaparty.test.Response
---@field status integer
---@field ok boolean status is 2xx
---@field headers table<string, string> lowercase names
---@field body string
local Response = {}
---@return string
function Response:text() end
---Fails the test if the body is not JSON.
---@return any
function Response:json() end

---@class luaparty.test.Conn
---@field id string the connection id (_pk)
---@field uri string the URL it connected to
---@field closed boolean
---@field closeCode integer|nil
---@field closeReason string|nil
local Conn = {}
---A string is a text frame, t.binary(s) a binary one.
---@param message string|luaparty.Binary
function Conn:send(message) end
---The next message, or nil and "timeout" / "closed". Waits in virtual time.
---@param timeout_ms? integer default 1000
---@return string|luaparty.Binary|nil message
---@return "timeout"|"closed"|nil why
function Conn:receive(timeout_ms) end
---The next message, JSON-decoded; fails the test if none came.
---@param timeout_ms? integer
---@return any
function Conn:receiveJson(timeout_ms) end
---Every message received and not read yet.
---@return (string|luaparty.Binary)[]
function Conn:messages() end
---The client closes (1000 or 3000-4999); onClose runs.
---@param code? integer
---@param reason? string
function Conn:close(code, reason) end

---@class luaparty.test.ConnectOptions
---@field id? string the connection id (_pk)
---@field query? table<string, string|number>
---@field headers? table<string, string>
---@field path? string appended to the room URL ("/sub" or "?x=1")

---@class luaparty.test.FetchOptions: luaparty.test.ConnectOptions
---@field method? string default "GET"
---@field body? string
---@field json? any encoded as the body, with content-type application/json

---@class luaparty.test.Storage
local Storage = {}
---@param key string
---@return any
function Storage:get(key) end
---@param key string
---@param value any
function Storage:put(key, value) end
---@param key string
---@return boolean existed
function Storage:delete(key) end
---As room.storage:list: {prefix=, start=, startAfter=, ["end"]=, reverse=, limit=}.
---@param options? table
---@return {key: string, value: any}[]
function Storage:list(options) end
---@return integer|nil epoch_ms
function Storage:alarm() end

---@class luaparty.test
local t = {}

---@param name string
---@param fn fun()
function t.test(name, fn) end
---@param fn fun()
function t.beforeEach(fn) end
---@param fn fun()
function t.afterEach(fn) end

---@param party string
---@param room string
---@param options? luaparty.test.ConnectOptions
---@return luaparty.test.Conn
function t.connect(party, room, options) end
---@param party string
---@param room string
---@param options? luaparty.test.ConnectOptions
---@return luaparty.test.Conn|nil
---@return luaparty.test.Response|nil refusal
function t.tryConnect(party, room, options) end
---t.fetch(party, room [, options]) or t.fetch("/any/url" [, options])
---@param party string
---@param room? string|luaparty.test.FetchOptions
---@param options? luaparty.test.FetchOptions
---@return luaparty.test.Response
function t.fetch(party, room, options) end
---@param party string
---@param room string
---@return luaparty.test.Storage
function t.storage(party, room) end

---The virtual clock, ms since the epoch.
---@return number
function t.now() end
---@param ms number
function t.advance(ms) end
---@param party string
---@param room string
function t.restart(party, room) end
---@param party string
---@param source? string the new text (default: the file as it is now)
---@return boolean ok
---@return string|nil why
function t.reload(party, source) end
---@param party string
---@param room string
---@return boolean
function t.loaded(party, room) end
---@param name string
function t.cron(name) end
---@param n integer
function t.seed(n) end
---@param s string
---@return luaparty.Binary
function t.binary(s) end
---@param v any
---@return boolean
function t.isBinary(v) end

---@param actual any
---@param expected any
---@param msg? string
function t.eq(actual, expected, msg) end
---@param a any
---@param b any
---@param msg? string
function t.ne(a, b, msg) end
---@param v any
---@param msg? string
function t.ok(v, msg) end
---@param s string
---@param pattern string a Lua pattern
---@param msg? string
function t.match(s, pattern, msg) end
---@param fn fun()
---@param pattern? string
---@return string message
function t.error(fn, pattern) end
---@param msg? string
function t.fail(msg) end
---@param fn fun()
---@return string[] errors
function t.partyErrors(fn) end

return t
