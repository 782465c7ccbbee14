---@meta luaparty
-- Type stubs for lua-language-server (LuaLS): completion and checks for party
-- code. Not loaded at run time. In .luarc.json of a project:
--   { "workspace.library": ["<luaparty>/lua/meta"] }
-- then annotate a party table with ---@class MyParty: luaparty.Party

---@class luaparty.Binary
---A binary WebSocket message. tostring(b) or b:bytes() gives its bytes, #b their length.
local Binary = {}
---@return string
function Binary:bytes() end

---@class luaparty.Request
---@field method string "GET", "POST", ...
---@field url string absolute URL with path, sub-path and query
---@field headers table<string, string> lowercase names
---@field body string
local Request = {}
---@return string
function Request:text() end
---@return any
function Request:json() end
---The URL-decoded value of a query parameter, or nil.
---@param name string
---@return string|nil
function Request:query(name) end

---@class luaparty.ResponseInit
---@field status? integer default 200
---@field headers? table<string, string>

---@class luaparty.Response
---@field status integer
---@field ok boolean status is 2xx
---@field headers table<string, string>
---@field body string
local ResponseObject = {}
---@return string
function ResponseObject:text() end
---@return any
function ResponseObject:json() end

---@class luaparty.ResponseModule
local Response = {}
---@param body string|luaparty.Binary|nil
---@param init? luaparty.ResponseInit
---@return luaparty.Response
function Response.new(body, init) end
---@param value any encoded with cjson
---@param init? luaparty.ResponseInit
---@return luaparty.Response
function Response.json(value, init) end
---@param v any
---@return boolean
function Response.is(v) end

---@class luaparty.ConnectionContext
---@field request luaparty.Request the upgrade request

---@class luaparty.Connection
---@field id string the _pk query parameter, or a random UUID
---@field uri string the URL the client connected to
---@field state any set with setState
local Connection = {}
---A string is sent as a text frame, a Binary as a binary frame. A string
---that is not valid UTF-8 raises an error (use luaparty.binary for bytes).
---@param message string|luaparty.Binary
---@return boolean sent false if the connection is closed
function Connection:send(message) end
---@param code? integer 1000-1003, 1007-1014 or 3000-4999
---@param reason? string at most 123 bytes of UTF-8
function Connection:close(code, reason) end
---@param value any|fun(previous: any): any
---@return any
function Connection:setState(value) end

---@class luaparty.ListOptions
---@field prefix? string
---@field start? string inclusive
---@field startAfter? string
---@field end? string exclusive
---@field reverse? boolean
---@field limit? integer

---@class luaparty.Entry
---@field key string
---@field value any

---@class luaparty.Entries: luaparty.Entry[]
local Entries = {}
---Iterates key, value in key order.
---@return fun(): string, any
function Entries:pairs() end
---@param key string
---@return any
function Entries:get(key) end

---@class luaparty.Storage
local Storage = {}
---@param key string|string[]
---@return any
function Storage:get(key) end
---@param key string|table<string, any>
---@param value? any
function Storage:put(key, value) end
---@param key string|string[]
---@return boolean|integer existed, or how many were deleted
function Storage:delete(key) end
---@param options? luaparty.ListOptions
---@return luaparty.Entries
function Storage:list(options) end
---Every key and the alarm.
function Storage:deleteAll() end
---@generic T
---@param fn fun(txn: luaparty.Transaction): T
---@return T
function Storage:transaction(fn) end
function Storage:sync() end
---@param epoch_ms number
function Storage:setAlarm(epoch_ms) end
---@return number|nil
function Storage:getAlarm() end
function Storage:deleteAlarm() end

---@class luaparty.Transaction: luaparty.Storage
local Transaction = {}
---Undo every write of this transaction when it returns.
function Transaction:rollback() end

---@class luaparty.FetchInit
---@field method? string
---@field headers? table<string, string>
---@field body? string|luaparty.Binary

---@class luaparty.Socket
---@field closed boolean
---@field onmessage? fun(message: string|luaparty.Binary)
---@field onclose? fun(code: integer)
local Socket = {}
---A string must be valid UTF-8 (a text frame); bytes go in a luaparty.binary.
---@param message string|luaparty.Binary
---@return boolean
function Socket:send(message) end
---Suspends the callback until a message arrives.
---@param timeout_ms? number
---@return string|luaparty.Binary|nil message
---@return string|nil error "closed" or "timeout"
function Socket:receive(timeout_ms) end
---@param code? integer
---@param reason? string
function Socket:close(code, reason) end

---@class luaparty.Stub
local Stub = {}
---HTTP to that room, in process. Suspends only the calling callback.
---@param path? string|luaparty.FetchInit
---@param init? luaparty.FetchInit
---@return luaparty.Response
function Stub:fetch(path, init) end
---A WebSocket-like connection to that room.
---@param path? string
---@return luaparty.Socket
function Stub:socket(path) end

---@class luaparty.PartyHandle
local PartyHandle = {}
---@param id string
---@return luaparty.Stub
function PartyHandle:get(id) end

---@class luaparty.Context
---@field parties table<string, luaparty.PartyHandle>

---@class luaparty.Room
---@field id string
---@field name string the party name
---@field env table partykit.json "vars", .env, .env.local and --var (README "Secrets and room.env")
---@field storage luaparty.Storage
---@field context luaparty.Context
local Room = {}
---A string must be valid UTF-8 (a text frame); bytes go in a luaparty.binary.
---@param message string|luaparty.Binary
---@param without? string[] connection ids to skip
function Room:broadcast(message, without) end
---@param id string
---@return luaparty.Connection|nil
function Room:getConnection(id) end
---for conn in room:getConnections([tag]) do ... end
---@param tag? string
---@return fun(): luaparty.Connection
function Room:getConnections(tag) end

---@class luaparty.Lobby
---@field id string|nil the room the request is for (nil in onFetch/onCron)
---@field party string
---@field env table
---@field parties table<string, luaparty.PartyHandle>

---@class luaparty.Cron
---@field name string
---@field cron string
---@field scheduledTime number

---@class luaparty.AlarmInfo
---@field retryCount integer
---@field isRetry boolean

---The table a party script returns. Instance callbacks use `:`;
---static hooks (onBefore*, onFetch, onCron) use `.` and get no self.
---@class luaparty.Party
---@field room luaparty.Room
---@field onStart? fun(self: luaparty.Party)
---@field onConnect? fun(self: luaparty.Party, conn: luaparty.Connection, ctx: luaparty.ConnectionContext)
---@field onMessage? fun(self: luaparty.Party, message: string|luaparty.Binary, sender: luaparty.Connection)
---@field onClose? fun(self: luaparty.Party, conn: luaparty.Connection)
---@field onError? fun(self: luaparty.Party, conn: luaparty.Connection, err: string)
---@field onRequest? fun(self: luaparty.Party, req: luaparty.Request): luaparty.Response|string|nil
---@field onAlarm? fun(self: luaparty.Party, info: luaparty.AlarmInfo)
---@field onReload? fun(self: luaparty.Party)
---@field getConnectionTags? fun(self: luaparty.Party, conn: luaparty.Connection, ctx: luaparty.ConnectionContext): string[]
---@field onBeforeConnect? fun(req: luaparty.Request, lobby: luaparty.Lobby): luaparty.Request|luaparty.Response|nil
---@field onBeforeRequest? fun(req: luaparty.Request, lobby: luaparty.Lobby): luaparty.Request|luaparty.Response|nil
---@field onFetch? fun(req: luaparty.Request, lobby: luaparty.Lobby): luaparty.Response|string|nil
---@field onCron? fun(cron: luaparty.Cron, lobby: luaparty.Lobby)
---(main party) a WebSocket to a URL outside the parties; set conn.onmessage / conn.onclose
---@field onSocket? fun(conn: luaparty.Connection, lobby: luaparty.Lobby)

---@class luaparty
---@field Response luaparty.ResponseModule
local luaparty = {}
---@param bytes string
---@return luaparty.Binary
function luaparty.binary(bytes) end
---@param v any
---@return boolean
function luaparty.isBinary(v) end
---@param s string
---@return boolean
function luaparty.validUtf8(s) end
---@param url string
---@param name string
---@return string|nil
function luaparty.queryParam(url, name) end

return luaparty
