-- kv: drives room.storage from HTTP (POST a JSON command) and WebSocket
-- (a JSON command per message, answered with {id=, result=} after the write).
-- Scenarios that JSON cannot express are run here and return a verdict.
local json = require "cjson"
local T = require "lib.testlib"

local KV = {}

---------------------------------------------------------------- special values
local function nestedRecords(depth)
  local root = { level = 1 }
  local cur = root
  for i = 2, depth do
    local t = { level = i }
    cur.child = t
    cur = t
  end
  cur.leaf = "bottom \0 of the well"
  return root
end

local function nestedArrays(depth)
  local root = { 1 }
  local cur = root
  for i = 2, depth do
    local t = { i }
    cur[2] = t
    cur = t
  end
  return root
end

local function allBytes()
  local b = {}
  for i = 0, 255 do b[#b + 1] = string.char(i) end
  return table.concat(b)
end

-- A fresh copy every call, so the comparison is against newly built values.
local function specials()
  local negzero = -(0.0)
  assert(1 / negzero == -math.huge, "this LuaJIT folds -0; fix the test")
  return {
      ["true"] = true,
      ["false"] = false,
      int53 = 2 ^ 53,
      negint53 = -(2 ^ 53),
      int53m1 = 2 ^ 53 - 1,
      bigint = 2 ^ 60,
      zero = 0,
      one = 1,
      negone = -1,
      tenth = 0.1,
      third = 1 / 3,
      huge = 1.7976931348623157e308,
      denormal = 4.9406564584124654e-324,
      pi = math.pi,
      negzero = negzero,
      inf = math.huge,
      ninf = -math.huge,
      nul = "a\0b\0\0c\0",
      invalidUtf8 = "\255\254\192\128\237\160\128\244\144\128\128 end",
      allBytes = allBytes(),
      emptyString = "",
      bigString = string.rep("xyz\0\255", 8000),
      deepRecords = nestedRecords(200),
      deepArrays = nestedArrays(200),
      emptyTable = {},
      array = { 1, "two", 3.5, true, false, { "nested" } },
      mixedKeys = {
        [1] = "number one",
        [2] = "number two",
        [3] = "number three",
        [10] = "sparse ten",
        [0] = "zero",
        [-1] = "minus one",
        [1.5] = "one and a half",
        [2 ^ 53] = "2^53 key",
        ["1"] = "string one",
        ["10"] = "string ten",
        ["k\0ey"] = "key with NUL",
        ["\255"] = "invalid utf-8 key",
        [""] = "empty key",
        nested = { a = { b = { c = { true, false, 0.5, negzero } } } },
      },
      numbersInTable = { negzero = negzero, inf = math.huge, ninf = -math.huge, int53 = 2 ^ 53, tiny = 4.9406564584124654e-324 },
  }
end

local function writeSpecials(storage, prefix)
  local names = {}
  for name, v in pairs(specials()) do
    storage:put(prefix .. name, v)
    names[#names + 1] = name
  end
  storage:put(prefix .. "ALL", specials())
  return { written = #names + 1 }
end

local function checkSpecials(storage, prefix)
  local expected = specials()
  local failures, checked = {}, 0
  local keys = {}
  for name, v in pairs(expected) do
    checked = checked + 1
    keys[#keys + 1] = prefix .. name
    local ok, why = T.deepEqual(v, storage:get(prefix .. name), "get(" .. name .. ")")
    if not ok then failures[#failures + 1] = why end
  end
  -- the whole set as one value
  local ok, why = T.deepEqual(expected, storage:get(prefix .. "ALL"), "get(ALL)")
  if not ok then failures[#failures + 1] = why end
  -- through get({keys})
  local many = storage:get(keys)
  for name, v in pairs(expected) do
    local ok2, why2 = T.deepEqual(v, many[prefix .. name], "get({...})[" .. name .. "]")
    if not ok2 then failures[#failures + 1] = why2 end
  end
  -- through list({prefix=})
  local seen = 0
  for k, v in storage:list({ prefix = prefix }):pairs() do
    local name = k:sub(#prefix + 1)
    seen = seen + 1
    local ok3, why3 = T.deepEqual(name == "ALL" and expected or expected[name], v, "list[" .. name .. "]")
    if not ok3 then failures[#failures + 1] = why3 end
  end
  if seen ~= checked + 1 then
    failures[#failures + 1] = string.format("list({prefix}) gave %d entries, expected %d", seen, checked + 1)
  end
  -- spot checks spelled out, in case deepEqual itself were wrong
  local nz = storage:get(prefix .. "negzero")
  if not (type(nz) == "number" and nz == 0 and 1 / nz == -math.huge) then
    failures[#failures + 1] = "negzero: 1/x is " .. tostring(type(nz) == "number" and 1 / nz or nz)
  end
  local i53 = storage:get(prefix .. "int53")
  if i53 ~= 9007199254740992 or i53 + 1 ~= 9007199254740992 or i53 - 1 ~= 9007199254740991 then
    failures[#failures + 1] = "int53 is " .. T.numstr(i53 or 0 / 0)
  end
  local nul = storage:get(prefix .. "nul")
  if nul ~= "a\0b\0\0c\0" or (type(nul) == "string" and #nul ~= 7) then
    failures[#failures + 1] = "nul string: " .. T.short(nul)
  end
  return { ok = #failures == 0, checked = checked + 1, failures = failures }
end

---------------------------------------------------------------- values that must be refused
local function badCases()
  local cyc = {}
  cyc.self = cyc
  local deepcyc = { a = { b = {} } }
  deepcyc.a.b.back = deepcyc
  return {
    { name = "function", value = print, expect = "function" },
    { name = "closure", value = function() end, expect = "function" },
    { name = "coroutine", value = coroutine.create(function() end), expect = "thread|coroutine" },
    { name = "cycle", value = cyc, expect = "cycle" },
    { name = "deepCycle", value = deepcyc, expect = "cycle" },
    { name = "boolKey", value = { [true] = 1 }, expect = "boolean" },
    { name = "nestedBoolKey", value = { a = { b = { [false] = "x" } } }, expect = "boolean" },
    { name = "nestedFunction", value = { a = { b = { c = print } } }, expect = "function" },
    { name = "functionInArray", value = { 1, 2, 3, tostring }, expect = "function" },
  }
end

local function matchesAny(msg, alternatives)
  for alt in alternatives:gmatch("[^|]+") do
    if msg:lower():find(alt, 1, true) then return true end
  end
  return false
end

local function refuse(storage, prefix)
  local results = {}
  for _, c in ipairs(badCases()) do
    local key = prefix .. c.name
    local existingKey = prefix .. "existing"
    local ok, err = pcall(storage.put, storage, key, c.value)
    local ok2, err2 = pcall(storage.put, storage, existingKey, c.value)
    local r = {
      raised = not ok,
      message = (not ok) and tostring(err) or nil,
      messageMentions = (not ok) and matchesAny(tostring(err), c.expect) or false,
      expectedMention = c.expect,
      written = storage:get(key) ~= nil,
      overwroteExisting = not (storage:get(existingKey) == "old"),
      raisedOnExisting = not ok2,
    }
    results[c.name] = r
  end
  -- put({...}) is atomic: a bad value anywhere means none of its keys is written
  local batch = {}
  for i = 1, 20 do batch[prefix .. "atom" .. i] = i end
  batch[prefix .. "atomBad"] = { f = print }
  local ok, err = pcall(storage.put, storage, batch)
  local written = {}
  for i = 1, 20 do
    if storage:get(prefix .. "atom" .. i) ~= nil then written[#written + 1] = "atom" .. i end
  end
  results.putTableAtomic = {
    raised = not ok,
    message = (not ok) and tostring(err) or nil,
    messageMentions = (not ok) and matchesAny(tostring(err), "function") or false,
    expectedMention = "function",
    written = #written > 0 or storage:get(prefix .. "atomBad") ~= nil,
    writtenKeys = written,
    overwroteExisting = false,
    raisedOnExisting = true,
  }
  return results
end

---------------------------------------------------------------- transactions
local function txnScenario(storage, mode, p)
  -- p.."z" = "keep" was written by an earlier request
  storage:put(p .. "before", "yes")
  local inside = {}
  local sentinel = { marker = "sentinel error object" }
  local ok, err, ret2, ret3 = pcall(storage.transaction, storage, function(txn)
    txn:put(p .. "x", 1)
    txn:put(p .. "y", { nested = true })
    inside.delZ = txn:delete(p .. "z")
    inside.getX = txn:get(p .. "x")
    inside.getZ = txn:get(p .. "z")
    inside.storageGetX = storage:get(p .. "x")
    local n = 0
    for k in txn:list({ prefix = p }):pairs() do n = n + 1 end
    inside.listed = n
    local many = txn:get({ p .. "x", p .. "y", p .. "z" })
    inside.manyCount = T.count(many)
    if mode == "error" then error("boom-123") end
    if mode == "errorObject" then error(sentinel) end
    if mode == "rollback" then
      txn:rollback()
      return "after rollback"
    end
    return "returned", 2, 3
  end)
  local after = {
    x = storage:get(p .. "x"),
    y = storage:get(p .. "y"),
    z = storage:get(p .. "z"),
    before = storage:get(p .. "before"),
  }
  return {
    ok = ok,
    err = (not ok) and (type(err) == "table" and (err == sentinel and "SAME SENTINEL" or "other table") or tostring(err)) or nil,
    errType = (not ok) and type(err) or nil,
    returned = ok and { err, ret2, ret3 } or nil,
    inside = inside,
    after = after,
  }
end

---------------------------------------------------------------- dispatch
local function handle(self, cmd)
  local storage = self.room.storage
  local generic = T.run(storage, cmd)
  if generic then return generic end
  local op = cmd.op
  if op == "writeSpecials" then
    return writeSpecials(storage, cmd.prefix)
  elseif op == "checkSpecials" then
    return checkSpecials(storage, cmd.prefix)
  elseif op == "refuse" then
    return refuse(storage, cmd.prefix)
  elseif op == "exists" then
    local out = {}
    for _, k in ipairs(cmd.keys) do out[k] = storage:get(k) ~= nil end
    return out
  elseif op == "txn" then
    return txnScenario(storage, cmd.mode, cmd.prefix)
  elseif op == "putNil" then
    local ok, err = pcall(storage.put, storage, cmd.key, nil)
    return { raised = not ok, message = (not ok) and tostring(err) or nil, after = storage:get(cmd.key) }
  elseif op == "putKeyLen" then
    local key = string.rep(cmd.ch or "k", cmd.len)
    local ok, err = pcall(storage.put, storage, key, "value of a long key")
    local okGet, readBack = pcall(storage.get, storage, key)
    return { raised = not ok, message = (not ok) and tostring(err) or nil, readBack = okGet and readBack or nil,
             getRaised = not okGet }
  elseif op == "getKeyLen" then
    local key = string.rep(cmd.ch or "k", cmd.len)
    local n = 0
    for k in storage:list({ prefix = string.rep(cmd.ch or "k", 10) }):pairs() do
      if k == key then n = n + 1 end
    end
    return { value = storage:get(key), listed = n }
  elseif op == "putRep" then
    local ok, err = pcall(storage.put, storage, cmd.key, string.rep(cmd.ch or "x", cmd.n))
    local v = storage:get(cmd.key)
    return { raised = not ok, message = (not ok) and tostring(err) or nil, present = v ~= nil, len = v and #v or nil }
  elseif op == "checkRep" then
    local v = storage:get(cmd.key)
    return { equal = v == string.rep(cmd.ch or "x", cmd.n), len = type(v) == "string" and #v or nil }
  elseif op == "selfTest" then
    -- the comparator must tell these apart, or the special-value verdicts mean nothing
    local negzero = -(0.0)
    local pairsToDiffer = {
      { 0, negzero }, { { [1] = "a" }, { ["1"] = "a" } }, { { a = { b = 2 ^ 53 } }, { a = { b = 2 ^ 53 + 2 } } },
      { "a\0b", "a\0c" }, { { 1, 2 }, { 1, 2, 3 } }, { math.huge, -math.huge }, { 1, "1" }, { {}, false },
      { specials(), (function() local t = specials(); t.deepRecords.child.child.level = 99; return t end)() },
    }
    local wronglyEqual = {}
    for i, p in ipairs(pairsToDiffer) do
      if T.deepEqual(p[1], p[2]) then wronglyEqual[#wronglyEqual + 1] = i end
    end
    local same = T.deepEqual(specials(), specials())
    return { wronglyEqual = wronglyEqual, n = #pairsToDiffer, equalCopiesEqual = same }
  elseif op == "argErrors" then
    -- get/put/delete are C functions (src/lua_storage.c): their errors name
    -- the caller's line, as the Lua methods' did. Each call shares its line
    -- with a marker error, whose position is the expected one.
    local function where(err) return tostring(err):match("^([^:]+:%d+):") end
    local okP, errP = pcall(function() storage:put({ [1] = "x" }) end); local _, markP = pcall(function() error("m") end)
    local okG, errG = pcall(function() storage:get({ "a", {} }) end); local _, markG = pcall(function() error("m") end)
    local okD, errD = pcall(function() storage:delete({ "a", true }) end); local _, markD = pcall(function() error("m") end)
    local okK, errK = pcall(function() storage:get() end); local _, markK = pcall(function() error("m") end)
    return {
      put = { raised = not okP, message = tostring(errP), at = where(errP), expected = where(markP) },
      get = { raised = not okG, message = tostring(errG), at = where(errG), expected = where(markG) },
      delete = { raised = not okD, message = tostring(errD), at = where(errD), expected = where(markD) },
      noKey = { raised = not okK, message = tostring(errK), at = where(errK), expected = where(markK) },
      -- called as plain functions, and through a transaction's object
      plain = storage.put(storage, cmd.prefix .. "p", 1) == nil and storage.get(storage, cmd.prefix .. "p"),
      txn = storage:transaction(function(txn)
        txn:put(cmd.prefix .. "t", "in txn")
        return { txn:get(cmd.prefix .. "t"), txn:delete({ cmd.prefix .. "t", cmd.prefix .. "none" }) }
      end),
    }
  elseif op == "byteOrder" then
    -- keys whose byte order differs from naive text orders
    local keys = { "B", "a", "a\0", "a\0b", "a/1", "aa", "b", "\195\169", "\255", "\0", "~" }
    for i, k in ipairs(keys) do storage:put(cmd.prefix .. k, i) end
    return { done = true }
  end
  error("unknown op " .. tostring(op))
end

function KV:onRequest(req)
  if req.method ~= "POST" then return T.reply({ room = self.room.id }) end
  local cmd = req:json()
  local ok, result = pcall(handle, self, cmd)
  if not ok then return T.reply({ error = tostring(result) }, 500) end
  return T.reply(result)
end

function KV:onMessage(message, sender)
  local cmd = json.decode(tostring(message))
  local ok, result = pcall(handle, self, cmd)
  if ok then
    sender:send(json.encode({ id = cmd.id, result = result }))
  else
    sender:send(json.encode({ id = cmd.id, error = tostring(result) }))
  end
end

return KV
