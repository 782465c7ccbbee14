-- luaparty.storage: room.storage's methods, loaded by the runtime the
-- first time a room calls one of them (runtime.lua, "parts"): most rooms
-- never use storage.
local core = require "luaparty.core"

return function(shared)
  local Storage = shared.Storage
  local M = {}

  --- storage:get(key) -> value; storage:get({k1, k2}) -> {k1 = v1, ...} (missing keys absent)
  --- storage:put(key, value); storage:put({k1 = v1, ...}) writes them atomically:
  --- if one value cannot be stored, none is written.
  --- storage:delete(key) -> existed; storage:delete({k1, ...}) -> count deleted
  -- These three are C functions (src/lua_storage.c): a get or put is one
  -- call from party code. A put of a table of pairs calls this back.
  M.get, M.put, M.delete = core.storage_methods(function(pairs_)
    core.storage_txn_begin()
    local ok, err = pcall(function()
      for k, v in pairs(pairs_) do
        if type(k) ~= "string" then error("storage:put({...}): keys must be strings", 0) end
        core.storage_put(k, v)
      end
    end)
    core.storage_txn_end(ok)
    if not ok then error(err, 3) end -- 1 is this function, 2 the C put, 3 its caller
  end)

  -- The result of list(): an array of {key =, value =} in key order, with
  -- entries:pairs() iterating key, value in that order and entries:get(key).
  local Entries = {}
  Entries.__index = Entries

  function Entries:pairs()
    local i = 0
    return function()
      i = i + 1
      local e = self[i]
      if e then return e.key, e.value end
    end
  end

  function Entries:get(key)
    for i = 1, #self do if self[i].key == key then return self[i].value end end
  end

  --- storage:list({prefix=, start=, startAfter=, ["end"]=, reverse=, limit=}) -> Entries
  function M:list(options)
    return setmetatable(core.storage_list(options), Entries)
  end

  --- storage:deleteAll(): every key and the alarm
  function M:deleteAll() core.storage_delete_all() end

  -- A transaction hands the same API to fn; an error inside it, or
  -- txn:rollback(), undoes every write it made.
  local Txn = setmetatable({}, { __index = Storage })
  Txn.__index = Txn
  function Txn:rollback() self._rollback = true end

  --- storage:transaction(function(txn) ... end) -> what fn returned
  function M:transaction(fn)
    if type(fn) ~= "function" then error("storage:transaction(fn): fn must be a function", 2) end
    local txn = setmetatable({ _rollback = false }, Txn)
    core.storage_txn_begin()
    local result = { pcall(fn, txn) }
    local ok = table.remove(result, 1)
    core.storage_txn_end(ok and not txn._rollback)
    if not ok then error(result[1], 0) end
    return unpack(result)
  end

  --- storage:sync(): writes are committed at the end of every callback step,
  --- and anything sent after a write waits for it, so there is nothing to wait for.
  function M:sync() end

  --- storage:setAlarm(epoch_ms) (a new alarm replaces the old), getAlarm(), deleteAlarm()
  function M:setAlarm(at) core.storage_set_alarm(at) end
  function M:getAlarm() return core.storage_get_alarm() end
  function M:deleteAlarm() core.storage_delete_alarm() end

  return { Storage = M }
end
