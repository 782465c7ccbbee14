-- luaparty.yjs: a Yjs document per room, spoken as y-websocket / y-partykit.
--
--   local yjs = require "luaparty.yjs"
--   return yjs.party({ gc = true, readOnly = function(self, conn, ctx) ... end,
--                      onChange = function(self, update) ... end })
--
-- Unchanged YPartyKitProvider (npm y-partykit) and WebsocketProvider (npm
-- y-websocket) clients sync through the party (parties/yjs.lua is a ready
-- one). The messages are y-protocols' (lib0 varints): sync step 1 / step 2 /
-- update, awareness updates and queries; y-partykit's "y-pk-batch" text
-- markers around a message sent in pieces are understood too.
--
-- The server holds no Y.Doc: the document is one merged Yjs update, and the
-- C side (src/yjs.c) merges, diffs and reads state vectors on the bytes.
--   * A client's sync step 1 is answered with only what its state vector
--     lacks; on connect the server sends its own state vector.
--   * An update is checked, appended to the room's storage and then relayed
--     to every other connection (the output gate holds the relay until the
--     write is durable). A sync step 2 is first cut to what the document
--     does not already have.
--   * Storage: the document under "yjs:doc:NNNNNN" and updates since under
--     "yjs:log:SEQ:PART" (values are split at 64 KiB). When the log passes
--     compactUpdates updates or compactBytes bytes, and when the last client
--     leaves, it is merged into the document in one transaction.
--   * A malformed message is logged and closes that connection only: 1007
--     for bad data, 1003 for an unknown message type or a text frame.
--   * Awareness: states are relayed; a closed connection's states are
--     removed for the others, as y-protocols does.
--
-- Options (all optional):
--   gc = true            drop deleted content when merging (a Y.Doc's gc)
--   readOnly = false     or function(self, conn, ctx) -> boolean: updates from
--                        such a connection are ignored (it still syncs)
--   onChange = nil       function(self, update): called after edits, with the
--                        whole document as one merged update (a string);
--                        debounced (uses the room's alarm: a party that sets
--                        onChange must not use storage alarms itself)
--   debounceWait = 2000, debounceMaxWait = 10000   (ms, as y-partykit)
--   compactUpdates = 500, compactBytes = 1048576
--   http = true          GET on the room answers the document as a Yjs
--                        update (application/octet-stream); ?info answers
--                        JSON sizes. Guard it with onBeforeRequest if needed.
local core = require("luaparty.core").yjs()
local luaparty = require "luaparty"
local Response = luaparty.Response
local binary = luaparty.binary

local DOC, LOG = "yjs:doc:", "yjs:log:"
local PART = 64 * 1024 -- bytes per storage value
local BATCH = "y-pk-batch#"
local MAX_BATCH = 32 * 1024 * 1024

local M = {}

local defaults = {
  gc = true, readOnly = false, debounceWait = 2000, debounceMaxWait = 10000,
  compactUpdates = 500, compactBytes = 1024 * 1024, http = true,
}

-- closes conn (c its state) for what it sent, with a log line; what it
-- sent after this is not read
local function refuse(c, conn, code, reason, what)
  print(("yjs: connection %s: %s, closing with %d"):format(conn.id, what or reason, code))
  c.closing = true
  conn:close(code, reason)
end

-- the document with every pending update merged in
local function merged(st)
  if #st.pending > 0 then
    local parts = { st.doc }
    for i = 1, #st.pending do parts[i + 1] = st.pending[i] end
    local doc, err = core.merge(parts, st.opts.gc, true)
    if not doc then error("yjs: merging the document failed: " .. err) end
    st.doc, st.pending, st.sv = doc, {}, nil
  end
  return st.doc
end

local function state_vector(st)
  local doc = merged(st)
  if not st.sv then st.sv = core.stateVector(doc) end
  return st.sv
end

-- values of at most PART bytes
local function parts_of(s)
  local out = {}
  for i = 1, math.max(#s, 1), PART do out[#out + 1] = s:sub(i, i + PART - 1) end
  return out
end

local function put_update(self, st, update)
  local seq = ("%012d"):format(st.seq)
  st.seq = st.seq + 1
  local entries = {}
  for i, part in ipairs(parts_of(update)) do
    local key = ("%s%s:%03d"):format(LOG, seq, i - 1)
    entries[key] = part
    st.log_keys[#st.log_keys + 1] = key
  end
  self.room.storage:put(entries)
  st.log_count = st.log_count + 1
  st.log_bytes = st.log_bytes + #update
end

-- the log merged into the document, in one transaction (the writes of a
-- callback step commit together)
local function compact(self, st)
  local doc = merged(st)
  local storage = self.room.storage
  local parts = parts_of(doc)
  local entries = {}
  for i, part in ipairs(parts) do entries[("%s%06d"):format(DOC, i - 1)] = part end
  storage:put(entries)
  local stale = {}
  for i = #parts, st.doc_parts - 1 do stale[#stale + 1] = ("%s%06d"):format(DOC, i) end
  for _, key in ipairs(st.log_keys) do stale[#stale + 1] = key end
  for i = 1, #stale, 128 do storage:delete({ unpack(stale, i, math.min(i + 127, #stale)) }) end
  st.doc_parts, st.doc_bytes = #parts, #doc
  st.log_keys, st.log_count, st.log_bytes = {}, 0, 0
end

local function note_change(self, st)
  local opts = st.opts
  if not opts.onChange then return end
  local now = core.now()
  st.last_change = now
  if not st.change_since then
    st.change_since = now
    self.room.storage:setAlarm(now + opts.debounceWait)
  end
end

-- sends msg to every connection but conn (also those sharing its id)
local function relay(self, st, msg, conn)
  self.room:broadcast(msg, { conn.id })
  if st.ids[conn.id] > 1 then
    for other in self.room:getConnections() do
      if other ~= conn and other.id == conn.id then other:send(msg) end
    end
  end
end

local function apply_update(self, st, conn, update, msg)
  put_update(self, st, update)
  relay(self, st, msg or binary(core.sync(2, update)), conn)
  st.pending[#st.pending + 1] = update
  note_change(self, st)
  if st.log_count >= st.opts.compactUpdates or st.log_bytes >= st.opts.compactBytes then compact(self, st) end
end

local function awareness_all(st)
  local list = {}
  for client, a in pairs(st.aw) do
    if a.state then
      list[#list + 1] = client
      list[#list + 1] = a.clock
      list[#list + 1] = a.state
    end
  end
  return list
end

-- y-protocols' applyAwarenessUpdate, relaying what it accepted
local function apply_awareness(self, st, conn, entries)
  local changed, owned = {}, st.conns[conn].clients
  for i = 1, #entries, 3 do
    local client, clock, state = entries[i], entries[i + 1], entries[i + 2]
    local cur = st.aw[client]
    local cur_clock = cur and cur.clock or 0
    local is_null = state == "null" or state:match("^%s*null%s*$") ~= nil
    if cur_clock < clock or (cur_clock == clock and is_null and cur and cur.state) then
      st.aw[client] = { clock = clock, state = (not is_null) and state or nil }
      if is_null then owned[client] = nil else owned[client] = true end
      changed[#changed + 1] = client
      changed[#changed + 1] = clock
      changed[#changed + 1] = is_null and "null" or state
    end
  end
  if #changed > 0 then relay(self, st, binary(core.awareness(changed)), conn) end
end

local function handle(self, st, conn, msg)
  local c = st.conns[conn]
  local kind, a, b = core.message(msg)
  if not kind then
    return refuse(c, conn, b, a:sub(1, 123), ("malformed message (%s)"):format(a))
  end
  if kind == "update" or kind == "sync2" then
    if c.readOnly or b then return end -- read-only, or nothing in it
    if kind == "sync2" then
      local news, empty = core.news(a, merged(st))
      if empty then return end
      return apply_update(self, st, conn, news)
    end
    return apply_update(self, st, conn, a, msg)
  elseif kind == "sync1" then
    local diff, err = core.diff(merged(st), a)
    if not diff then error("yjs: " .. err) end
    conn:send(binary(core.sync(1, diff)))
  elseif kind == "awareness" then
    apply_awareness(self, st, conn, a)
  elseif kind == "query" then
    local all = awareness_all(st)
    if #all > 0 then conn:send(binary(core.awareness(all))) end
  end
end

-- y-partykit sends a message over 1 MB as pieces between two text markers
local function batch_marker(self, st, conn, text)
  local c = st.conns[conn]
  local ok, marker = pcall(require("cjson").decode, text:sub(#BATCH + 1))
  if not ok or type(marker) ~= "table" or (marker.type ~= "start" and marker.type ~= "end") then
    return refuse(c, conn, 1007, "malformed y-pk-batch marker")
  end
  if marker.type == "start" then
    c.batch = { id = marker.id, count = marker.count, size = marker.size, parts = {}, bytes = 0 }
    return
  end
  local batch = c.batch
  c.batch = nil
  if not batch or batch.id ~= marker.id or batch.count ~= #batch.parts or batch.size ~= batch.bytes
     or marker.count ~= #batch.parts or marker.size ~= batch.bytes then
    return refuse(c, conn, 1007, "y-pk-batch end does not match its start")
  end
  return handle(self, st, conn, binary(table.concat(batch.parts))) -- relayed whole, as a binary frame
end

local function load(self, st)
  local base, log = {}, {}
  for _, e in ipairs(self.room.storage:list({ prefix = "yjs:" })) do
    if e.key:sub(1, #DOC) == DOC then
      base[#base + 1] = e.value
    elseif e.key:sub(1, #LOG) == LOG then
      local seq = tonumber(e.key:sub(#LOG + 1, #LOG + 12))
      if seq then
        if not log[#log] or log[#log].seq ~= seq then log[#log + 1] = { seq = seq, parts = {} } end
        local parts = log[#log].parts
        parts[#parts + 1] = e.value
        st.log_keys[#st.log_keys + 1] = e.key
        st.seq = seq + 1
      end
    end
  end
  st.doc_parts = #base
  local doc = table.concat(base)
  if doc == "" then doc = "\0\0" end
  st.doc_bytes = #doc
  local updates = { doc }
  for _, u in ipairs(log) do
    local update = table.concat(u.parts)
    updates[#updates + 1] = update
    st.log_count = st.log_count + 1
    st.log_bytes = st.log_bytes + #update
  end
  local merged_doc, err = core.merge(updates, st.opts.gc, true)
  if not merged_doc then
    -- a damaged entry: keep what reads, say what did not
    print("yjs: stored document does not merge (" .. err .. "); dropping unreadable entries")
    local good = {}
    for i, u in ipairs(updates) do
      if core.merge({ u }) then good[#good + 1] = u else print(("yjs: stored update %d dropped"):format(i)) end
    end
    merged_doc = assert(core.merge(good, st.opts.gc, true))
  end
  st.doc = merged_doc
end

--- yjs.party(options) -> a party table (onStart, onConnect, onMessage,
--- onClose, onRequest, onAlarm). Extend it by wrapping its methods.
function M.party(options)
  local opts = {}
  for k, v in pairs(defaults) do opts[k] = v end
  for k, v in pairs(options or {}) do
    if defaults[k] == nil and k ~= "onChange" then error("luaparty.yjs: unknown option " .. tostring(k), 2) end
    opts[k] = v
  end

  local P = { options = opts }

  function P:onStart()
    local st = {
      opts = opts, doc = "\0\0", pending = {}, seq = 0, log_keys = {}, log_count = 0, log_bytes = 0,
      doc_parts = 0, doc_bytes = 0, aw = {}, conns = {}, ids = {},
    }
    self.yjs = st
    load(self, st)
  end

  function P:onConnect(conn, ctx)
    local st = self.yjs
    local ro = opts.readOnly
    if type(ro) == "function" then ro = ro(self, conn, ctx) end
    st.conns[conn] = { readOnly = not not ro, clients = {} }
    st.ids[conn.id] = (st.ids[conn.id] or 0) + 1
    conn:send(binary(core.sync(0, state_vector(st))))
    local all = awareness_all(st)
    if #all > 0 then conn:send(binary(core.awareness(all))) end
  end

  function P:onMessage(msg, conn)
    local st = self.yjs
    local c = st.conns[conn]
    if not c or c.closing then return end
    if type(msg) == "string" then -- a text frame
      if msg:sub(1, #BATCH) == BATCH then return batch_marker(self, st, conn, msg) end
      return refuse(c, conn, 1003, "binary messages only", "text frame (this party speaks binary y-websocket messages)")
    end
    if c.batch then
      local b = c.batch
      b.parts[#b.parts + 1] = tostring(msg)
      b.bytes = b.bytes + #msg
      if b.bytes > MAX_BATCH then
        c.batch = nil
        refuse(c, conn, 1009, "batch too large", "y-pk-batch larger than 32 MiB")
      end
      return
    end
    return handle(self, st, conn, msg)
  end

  function P:onClose(conn)
    local st = self.yjs
    local c = st.conns[conn]
    if not c then return end
    st.conns[conn] = nil
    st.ids[conn.id] = st.ids[conn.id] - 1
    if st.ids[conn.id] == 0 then st.ids[conn.id] = nil end
    local removed = {}
    for client in pairs(c.clients) do
      local a = st.aw[client]
      if a and a.state then
        a.clock, a.state = a.clock + 1, nil
        removed[#removed + 1] = client
        removed[#removed + 1] = a.clock
        removed[#removed + 1] = "null"
      end
    end
    if #removed > 0 then self.room:broadcast(binary(core.awareness(removed))) end
    if next(st.conns) == nil and st.log_count > 0 then compact(self, st) end
  end

  function P:onAlarm()
    local st = self.yjs
    if not opts.onChange then return end
    local now = core.now()
    if st.change_since then
      local due = math.min(st.last_change + opts.debounceWait, st.change_since + opts.debounceMaxWait)
      if now < due then return self.room.storage:setAlarm(due) end
    end
    st.change_since = nil -- (nil after a restart: the alarm says a change was not reported yet)
    return opts.onChange(self, merged(st))
  end

  function P:onRequest(req)
    if not opts.http then return Response.new("Not found", { status = 404 }) end
    if req.method ~= "GET" and req.method ~= "HEAD" then
      return Response.new("GET only", { status = 405, headers = { allow = "GET, HEAD" } })
    end
    local st = self.yjs
    if req.url:match("[?&]info") then
      local n = 0
      for _ in pairs(st.conns) do n = n + 1 end
      local key_bytes = st.doc_parts * #(DOC .. "000000") + #st.log_keys * #(LOG .. "000000000000:000")
      return Response.json({ documentBytes = #merged(st), storedDocumentBytes = st.doc_bytes,
        storedUpdates = st.log_count, storedUpdateBytes = st.log_bytes, connections = n,
        storedBytes = st.doc_bytes + st.log_bytes + key_bytes })
    end
    return Response.new(binary(merged(st)), { headers = { ["content-type"] = "application/octet-stream" } })
  end

  return P
end

return M
