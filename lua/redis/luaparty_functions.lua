#!lua name=luaparty
--[[ luaparty_functions.lua - the Redis side of cluster mode (src/cluster.c).

Loaded by every node at start and on every reconnect with
FUNCTION LOAD REPLACE (embedded in the binary by scripts/embed-file.cmake),
so all nodes of a cluster must run the same luaparty version.

Keys (a single Redis primary; see src/cluster.h for the whole layout):
  lp:epoch             counter, one value per node incarnation
  lp:node:<id>         = <epoch>, PX lease ttl: the node's lease
  lp:nodes             hash <id> -> "<epoch>|<internal addr>|<rooms>|<ts ms>"
  lp:own:{<party>/<room>}  hash node, epoch, fence: the room's directory entry.
                       Never deleted: release clears node/epoch only, so the
                       fence counter stays monotonic for the room's lifetime.
                       Cluster storage adds seq (commits so far), vfence (the
                       fence of the last commit: (vfence, seq) is the data's
                       version), alarm and alarm_retries.
  lp:kv:{<party>/<room>}   hash key -> encoded value: the room's storage
  lp:alarms            zset "<party>/<room>" (as inside the braces) -> alarm ms

Each function checks its arguments and answers errors with a code the C side
parses: "LPARG <text>" (a caller bug), "LPLIVE <epoch>" (node id collision),
"LPFENCED" (a commit from a node that no longer owns the room), "LPSEQ"
(a commit that does not follow the last one), "LPOWNED <node>" (an import
into a room a live node owns).
Every claim first checks the caller's own lease: a node that lost it must not
win anything, whatever its local clock says. ]]

local DAY_MS = 86400000

local function node_key(id) return 'lp:node:' .. id end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function arg_error(fn, what)
  return redis.error_reply('LPARG ' .. fn .. ': ' .. what)
end

-- Node ids, addresses and commit tokens go into key names, hash values and
-- '|'-separated values.
local function bad_token(s, max)
  return type(s) ~= 'string' or #s == 0 or #s > max or s:find('[%z\1-\32|\127]') ~= nil
end

-- A positive decimal integer in a string (epochs, ttls); nil if not.
local function uint(s)
  if type(s) ~= 'string' or not s:match('^%d+$') or #s > 15 then return nil end
  return tonumber(s)
end

-- Is node n's lease held by incarnation `epoch` (a string)?
local function alive(n, epoch)
  return epoch ~= nil and epoch ~= false and redis.call('GET', node_key(n)) == epoch
end

local function addr_of(n)
  local v = redis.call('HGET', 'lp:nodes', n)
  if not v then return '' end
  return v:match('^%d+|([^|]*)|') or ''
end

-- Numbers as decimal integers ('..' would print 1e+14 for large ones).
local function int(n)
  if type(n) == 'number' then return string.format('%d', n) end
  return n
end

local function publish(id, epoch, addr, rooms)
  redis.call('HSET', 'lp:nodes', id, int(epoch) .. '|' .. addr .. '|' .. int(rooms) .. '|' .. int(now_ms()))
end

-- lp_register(id, addr, ttl_ms, prev_epoch) -> new epoch
-- prev_epoch is the caller's own previous incarnation ("0" for none): a node
-- that self-fenced may replace its own stale key, never someone else's.
local function lp_register(keys, args)
  local id, addr, ttl, prev = args[1], args[2], uint(args[3]), args[4]
  if #keys ~= 0 or #args ~= 4 then return arg_error('lp_register', 'wants 0 keys and id, addr, ttl, prev_epoch') end
  if bad_token(id, 63) then return arg_error('lp_register', 'bad node id') end
  if bad_token(addr, 299) then return arg_error('lp_register', 'bad internal address') end
  if not ttl or ttl < 1 then return arg_error('lp_register', 'bad ttl') end
  if not uint(prev) then return arg_error('lp_register', 'bad prev_epoch') end
  local held = redis.call('GET', node_key(id))
  if held and held ~= prev then return redis.error_reply('LPLIVE ' .. held) end
  local epoch = redis.call('INCR', 'lp:epoch')
  if epoch <= tonumber(prev) then
    -- lp:epoch went back (a Redis that lost its data): never hand a node an
    -- epoch it already had, or its late answers would pass as current.
    epoch = tonumber(prev) + 1
    redis.call('SET', 'lp:epoch', int(epoch))
  end
  redis.call('SET', node_key(id), epoch, 'PX', ttl)
  publish(id, epoch, addr, 0)
  return epoch
end

-- lp_renew(id, epoch, ttl_ms, rooms, addr) -> {1, id, entry, id, entry, ...} | {0}
-- Extends the lease only if it still holds my epoch: a node whose key
-- vanished (expired, deleted) never recreates it. On success answers the
-- live nodes of lp:nodes (the caller's placement cache) and drops entries of
-- nodes dead for a day, so a churn of node ids does not grow the hash.
local function lp_renew(keys, args)
  local id, epoch, ttl, rooms, addr = args[1], args[2], uint(args[3]), uint(args[4]), args[5]
  if #keys ~= 0 or #args ~= 5 then return arg_error('lp_renew', 'wants 0 keys and id, epoch, ttl, rooms, addr') end
  if bad_token(id, 63) or not uint(epoch) then return arg_error('lp_renew', 'bad node id or epoch') end
  if not ttl or ttl < 1 or not rooms then return arg_error('lp_renew', 'bad ttl or rooms') end
  if bad_token(addr, 299) then return arg_error('lp_renew', 'bad internal address') end
  if redis.call('GET', node_key(id)) ~= epoch then return {0} end
  redis.call('PEXPIRE', node_key(id), ttl)
  publish(id, epoch, addr, rooms)
  local out, now = {1}, now_ms()
  local all = redis.call('HGETALL', 'lp:nodes')
  for i = 1, #all, 2 do
    local n, v = all[i], all[i + 1]
    local e, ts = v:match('^(%d+)|.*|(%d+)$')
    if e and alive(n, e) then
      out[#out + 1] = n
      out[#out + 1] = v
    elseif not ts or now - tonumber(ts) > DAY_MS then
      redis.call('HDEL', 'lp:nodes', n)
    end
  end
  return out
end

-- The version of a room's data: {vfence, seq} as integers (0, 0: none).
local function version(own)
  local v = redis.call('HMGET', own, 'vfence', 'seq')
  return tonumber(v[1]) or 0, tonumber(v[2]) or 0
end

-- lp_claim(own; id, epoch, for_id, for_epoch) -> {code, fence, node, addr, vfence, seq}
--   code 1: the room is now the caller's; 2: it was the caller's already;
--   0: it is `node`'s (at `addr`);
--   -1: the caller's own lease is gone (it must fence), nothing changed;
--   -2: the room is pinned to `node` (its data is in that node's local
--   storage: lp_pin) and that node is down: nobody may take it.
-- vfence, seq: the version of the room's data (cluster storage), so the
-- winner knows at once whether its local copy is current.
-- Entry names the caller -> its own. Names a node whose lease still holds
-- that epoch -> that owner. Otherwise the room is free: bump the fence and
-- give it to for_id (the load guard's choice) if that node is alive at
-- for_epoch, else to the caller.
local function lp_claim(keys, args)
  local own, id, epoch, for_id, for_epoch = keys[1], args[1], args[2], args[3], args[4]
  if #keys ~= 1 or #args ~= 4 then return arg_error('lp_claim', 'wants 1 key and id, epoch, for_id, for_epoch') end
  if not own:match('^lp:own:{.+}$') then return arg_error('lp_claim', 'key is not lp:own:{...}') end
  if bad_token(id, 63) or not uint(epoch) then return arg_error('lp_claim', 'bad node id or epoch') end
  if for_id ~= '' and (bad_token(for_id, 63) or not uint(for_epoch)) then
    return arg_error('lp_claim', 'bad for_id or for_epoch')
  end
  if not alive(id, epoch) then return {-1, 0, '', '', 0, 0} end
  local cur = redis.call('HMGET', own, 'node', 'epoch', 'fence')
  local node, ep, fence = cur[1], cur[2], tonumber(cur[3]) or 0
  local vf, seq = version(own)
  if node == id and ep == epoch then return {2, fence, id, addr_of(id), vf, seq} end -- mine already
  if node and alive(node, ep) then return {0, fence, node, addr_of(node), vf, seq} end
  local to, to_epoch = id, epoch
  local home = redis.call('HGET', own, 'home')
  if home and home ~= id then
    local home_epoch = redis.call('GET', node_key(home))
    if not home_epoch then return {-2, fence, home, '', vf, seq} end
    to, to_epoch = home, home_epoch -- a pinned room goes back to its home node
  elseif not home and for_id ~= '' and for_id ~= id and alive(for_id, for_epoch) then
    to, to_epoch = for_id, for_epoch
  end
  fence = redis.call('HINCRBY', own, 'fence', 1)
  redis.call('HSET', own, 'node', to, 'epoch', to_epoch)
  return {to == id and 1 or 0, fence, to, addr_of(to), vf, seq}
end

-- (own; id, epoch) for a change to a room the caller owns: runs change(own, id)
-- and answers 1, or answers 0 if the room is not the caller's.
local function on_my_room(name, keys, args, change)
  local own, id, epoch = keys[1], args[1], args[2]
  if #keys ~= 1 or #args ~= 2 then return arg_error(name, 'wants 1 key and id, epoch') end
  if not own:match('^lp:own:{.+}$') then return arg_error(name, 'key is not lp:own:{...}') end
  if bad_token(id, 63) or not uint(epoch) then return arg_error(name, 'bad node id or epoch') end
  local cur = redis.call('HMGET', own, 'node', 'epoch')
  if cur[1] ~= id or cur[2] ~= epoch then return 0 end
  change(own, id)
  return 1
end

-- lp_release(own; id, epoch) -> 1 released | 0 not mine. Keeps the fence.
local function lp_release(keys, args)
  return on_my_room('lp_release', keys, args, function(own) redis.call('HDEL', own, 'node', 'epoch') end)
end

-- lp_pin(own; id, epoch) -> 1 pinned | 0 not mine: the room's data now lives in
-- this node's local storage, so only this node may own it from now on.
local function lp_pin(keys, args)
  return on_my_room('lp_pin', keys, args, function(own, id) redis.call('HSET', own, 'home', id) end)
end

-- lp_unregister(id, epoch) -> 1 | 0: a clean stop. Deletes the lease (so peers
-- can claim the node's rooms at once) and the lp:nodes entry, both only if
-- they still belong to this incarnation.
local function lp_unregister(keys, args)
  local id, epoch = args[1], args[2]
  if #keys ~= 0 or #args ~= 2 then return arg_error('lp_unregister', 'wants 0 keys and id, epoch') end
  if bad_token(id, 63) or not uint(epoch) then return arg_error('lp_unregister', 'bad node id or epoch') end
  local done = 0
  if redis.call('GET', node_key(id)) == epoch then
    redis.call('DEL', node_key(id))
    done = 1
  end
  local v = redis.call('HGET', 'lp:nodes', id)
  if v and v:match('^(%d+)|') == epoch then redis.call('HDEL', 'lp:nodes', id) end
  return done
end


---------------------------------------------------------------- storage

local function room_keys(name, keys, n)
  if #keys ~= n then return arg_error(name, 'wants ' .. n .. ' keys') end
  if not keys[1]:match('^lp:own:{.+}$') or keys[2] ~= 'lp:kv:' .. keys[1]:sub(8) then
    return arg_error(name, 'keys are not lp:own:{R} and lp:kv:{R}')
  end
  if n == 3 and keys[3] ~= 'lp:alarms' then return arg_error(name, 'third key is not lp:alarms') end
  return nil
end

-- The zset member of a room: what stands between the braces of its keys.
local OWN = 'lp:own:{'
local function member_of(own) return own:sub(#OWN + 1, -2) end
-- The inverse: a room's lp:own key from its member.
local function own_of(member) return OWN .. member .. '}' end

local function set_alarm(own, alarms, at, retries)
  redis.call('HSET', own, 'alarm', at, 'alarm_retries', retries)
  redis.call('ZADD', alarms, at, member_of(own))
end

local function clear_alarm(own, alarms)
  redis.call('HDEL', own, 'alarm', 'alarm_retries')
  redis.call('ZREM', alarms, member_of(own))
end

-- lp_commit(own, kv, alarms; fence, base_seq, token, op...) -> new seq
-- One callback step's writes, atomically, only from the room's owner: the
-- fence must be the room's current one and its owner's lease alive
-- (LPFENCED otherwise); base_seq must be the room's seq (LPSEQ). A retry of
-- a commit that landed (the reply was lost) is known by its token (unique
-- per commit) and answers its seq again, applying nothing.
-- Ops: P key value | D key | X (delete all, alarm too) | A at retries | a.
local function lp_commit(keys, args)
  local bad = room_keys('lp_commit', keys, 3)
  if bad then return bad end
  local own, kv, alarms = keys[1], keys[2], keys[3]
  local fence, base, token = uint(args[1]), uint(args[2]), args[3]
  if not fence or not base then return arg_error('lp_commit', 'bad fence or seq') end
  if bad_token(token, 64) then return arg_error('lp_commit', 'bad token') end
  local cur = redis.call('HMGET', own, 'node', 'epoch', 'fence', 'seq', 'vfence', 'token')
  local seq = tonumber(cur[4]) or 0
  if seq == base + 1 and tonumber(cur[5]) == fence and cur[6] == token then return seq end -- a retry
  if tonumber(cur[3]) ~= fence or not cur[1] or not alive(cur[1], cur[2]) then
    return redis.error_reply('LPFENCED the room belongs to another node now')
  end
  if seq ~= base then return redis.error_reply('LPSEQ room is at ' .. seq .. ', commit follows ' .. base) end
  -- Checked whole before anything is applied: a Redis script that fails
  -- half-way keeps what it wrote.
  local arity = { P = 2, D = 1, X = 0, A = 2, a = 0 }
  local i, n = 4, #args
  while i <= n do
    local k = arity[args[i]]
    if not k or i + k > n then return arg_error('lp_commit', 'bad op at argument ' .. i) end
    if args[i] == 'A' and not (tonumber(args[i + 1]) and uint(args[i + 2])) then
      return arg_error('lp_commit', 'bad alarm at argument ' .. i)
    end
    i = i + 1 + k
  end
  i = 4
  while i <= n do
    local op = args[i]
    if op == 'P' then redis.call('HSET', kv, args[i + 1], args[i + 2])
    elseif op == 'D' then redis.call('HDEL', kv, args[i + 1])
    elseif op == 'X' then redis.call('DEL', kv); clear_alarm(own, alarms)
    elseif op == 'A' then set_alarm(own, alarms, args[i + 1], args[i + 2])
    else clear_alarm(own, alarms) end
    i = i + 1 + arity[op]
  end
  redis.call('HSET', own, 'seq', base + 1, 'vfence', fence, 'token', token)
  return base + 1
end

-- lp_load(own, kv) -> {vfence, seq, alarm ('' if none), alarm_retries, k1, v1, ...}
-- A room's whole data, as one snapshot.
local function lp_load(keys, args)
  local bad = room_keys('lp_load', keys, 2)
  if bad then return bad end
  local vf, seq = version(keys[1])
  local al = redis.call('HMGET', keys[1], 'alarm', 'alarm_retries')
  local out = {vf, seq, al[1] or '', tonumber(al[2]) or 0}
  local all = redis.call('HGETALL', keys[2])
  for i = 1, #all do out[#out + 1] = all[i] end
  return out
end

-- lp_alarm_due(alarms; id, epoch, now, limit) -> {next, member, at, retries, ...}
-- Due alarms the caller may run: of its own rooms, or of rooms no live node
-- owns (it claims them first). next: the earliest alarm after now, -1 if none.
local function lp_alarm_due(keys, args)
  local id, epoch, now, limit = args[1], args[2], tonumber(args[3]), uint(args[4])
  if #keys ~= 1 or keys[1] ~= 'lp:alarms' then return arg_error('lp_alarm_due', 'wants the key lp:alarms') end
  if bad_token(id, 63) or not uint(epoch) or not now or not limit then
    return arg_error('lp_alarm_due', 'bad id, epoch, now or limit')
  end
  local out = {-1}
  local due = redis.call('ZRANGEBYSCORE', keys[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit * 4)
  for i = 1, #due, 2 do
    local m = due[i]
    local cur = redis.call('HMGET', own_of(m), 'node', 'epoch', 'alarm_retries')
    if (cur[1] == id and cur[2] == epoch) or not cur[1] or not alive(cur[1], cur[2]) then
      out[#out + 1] = m
      out[#out + 1] = due[i + 1]
      out[#out + 1] = tonumber(cur[3]) or 0
      if #out >= 1 + 3 * limit then break end
    end
  end
  local nxt = redis.call('ZRANGEBYSCORE', keys[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if nxt[2] then out[1] = tonumber(nxt[2]) end
  return out
end

-- lp_alarm_drop(alarms; member, at) -> 1 | 0: forgets an alarm nobody can run
-- (its party is gone), if it is still the one seen.
local function lp_alarm_drop(keys, args)
  if #keys ~= 1 or keys[1] ~= 'lp:alarms' then return arg_error('lp_alarm_drop', 'wants the key lp:alarms') end
  if type(args[1]) ~= 'string' or #args[1] == 0 or not tonumber(args[2]) then
    return arg_error('lp_alarm_drop', 'wants a member and its time')
  end
  local score = redis.call('ZSCORE', keys[1], args[1])
  if not score or tonumber(score) ~= tonumber(args[2]) then return 0 end
  redis.call('ZREM', keys[1], args[1])
  redis.call('HDEL', own_of(args[1]), 'alarm', 'alarm_retries')
  return 1
end

-- lp_import(own, kv, alarms; mode, alarm, alarm_retries, k1, v1, ...) -> {fence, seq}
-- `luaparty storage export`: puts a room's data from a node's SQLite into
-- Redis. mode "first" replaces the room's data (refused with LPOWNED while a
-- live node owns the room) and makes a new version (fence + 1), so no node's
-- cached copy passes as current; "more" adds entries to it.
local function lp_import(keys, args)
  local bad = room_keys('lp_import', keys, 3)
  if bad then return bad end
  local own, kv, alarms = keys[1], keys[2], keys[3]
  local mode, at, retries = args[1], args[2], args[3]
  if mode ~= 'first' and mode ~= 'more' then return arg_error('lp_import', 'mode is first or more') end
  if (#args - 3) % 2 ~= 0 then return arg_error('lp_import', 'keys and values come in pairs') end
  local cur = redis.call('HMGET', own, 'node', 'epoch')
  if cur[1] and alive(cur[1], cur[2]) then return redis.error_reply('LPOWNED ' .. cur[1]) end
  if mode == 'first' then
    redis.call('DEL', kv)
    clear_alarm(own, alarms)
    if at ~= '' then set_alarm(own, alarms, at, retries) end
    local fence = redis.call('HINCRBY', own, 'fence', 1)
    redis.call('HSET', own, 'vfence', fence, 'seq', 1)
    redis.call('HDEL', own, 'home') -- pinned by --cluster-storage local: its data is in Redis now
  end
  for i = 4, #args, 2 do redis.call('HSET', kv, args[i], args[i + 1]) end
  local vf, seq = version(own)
  return {vf, seq}
end

redis.register_function('lp_register', lp_register)
redis.register_function('lp_renew', lp_renew)
redis.register_function('lp_claim', lp_claim)
redis.register_function('lp_release', lp_release)
redis.register_function('lp_pin', lp_pin)
redis.register_function('lp_unregister', lp_unregister)
redis.register_function('lp_commit', lp_commit)
redis.register_function('lp_load', lp_load)
redis.register_function('lp_alarm_due', lp_alarm_due)
redis.register_function('lp_alarm_drop', lp_alarm_drop)
redis.register_function('lp_import', lp_import)
