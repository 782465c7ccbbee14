---@meta luaparty.yjs
-- Type stubs for require "luaparty.yjs" (lua/luaparty/yjs.lua): a Yjs
-- document per room, synced with y-partykit / y-websocket clients.

---@class luaparty.yjs.Options
---@field gc? boolean drop deleted content when merging (default true)
---@field readOnly? boolean|fun(self: luaparty.Party, conn: luaparty.Connection, ctx: luaparty.ConnectionContext): boolean updates from such connections are ignored (default false)
---@field onChange? fun(self: luaparty.Party, update: string) debounced; the whole document as one Yjs update (uses the room's alarm)
---@field debounceWait? number ms without edits before onChange (default 2000)
---@field debounceMaxWait? number ms at most between an edit and onChange (default 10000)
---@field compactUpdates? number stored updates that trigger a compaction (default 500)
---@field compactBytes? number stored update bytes that trigger a compaction (default 1 MiB)
---@field http? boolean GET answers the document as one update, ?info its sizes (default true)

---@class luaparty.yjs
local yjs = {}

---A party table (onStart, onConnect, onMessage, onClose, onRequest, onAlarm)
---speaking the y-websocket protocol; wrap its methods to add your own.
---@param options? luaparty.yjs.Options
---@return luaparty.Party
function yjs.party(options) end

return yjs
