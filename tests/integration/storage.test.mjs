// Durable room storage: self.room.storage get/put/delete/list/deleteAll/
// transaction/sync, value round-trips across a restart, refused values, size
// limits, idle room unloading and unusable storage directories.
// Parties: tests/projects/storage (kv.lua drives storage from POSTed JSON
// commands; checks JSON cannot express run in Lua and return a verdict).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  runExpectExit, wsConnect, closeAll, mkTmp, sleep,
} from './lib/server.mjs';
import { storageProject } from './lib/storage-project.mjs';

const PROJECT = 'storage';
const { req, start, cmd, shared: sharedServer } = storageProject('kv');

const hex = (s) => Buffer.from(s, 'utf8').toString('hex');
/** A list() answer as an array of entries (lua-cjson encodes an empty table as {}). */
const arr = (x) => (Array.isArray(x) ? x : []);
const entries = (r) => arr(r.entries);
const listKeys = (r) => entries(r).map((e) => e.key);

test('get/put/delete: single keys, tables of keys, sync()', { timeout: 15000 }, async () => {
  const srv = await sharedServer();
  const R = 'basic';
  assert.deepEqual(await cmd(srv, R, { op: 'get', key: 'missing' }), { found: false, luaType: 'nil' });

  const VALUES = {
    table: { a: 1, b: ['x', 'y'], nested: { deep: true, s: 'h\u00e9llo \u2713' } },
    str: 'a string \u2713',
    int: 42,
    float: 3.5,
    neg: -7,
    yes: true,
    no: false,
  };
  for (const [k, v] of Object.entries(VALUES)) await cmd(srv, R, { op: 'put', key: k, value: v });
  for (const [k, v] of Object.entries(VALUES)) {
    const r = await cmd(srv, R, { op: 'get', key: k });
    assert.equal(r.found, true, `get(${k}) after put`);
    assert.deepEqual(r.value, v, `get(${k})`);
  }
  assert.equal((await cmd(srv, R, { op: 'get', key: 'no' })).luaType, 'boolean');
  assert.equal((await cmd(srv, R, { op: 'get', key: 'int' })).luaType, 'number');

  // overwrite
  await cmd(srv, R, { op: 'put', key: 'str', value: 'overwritten' });
  assert.equal((await cmd(srv, R, { op: 'get', key: 'str' })).value, 'overwritten');

  // get({k1, k2}) -> table key -> value, missing keys absent
  const many = await cmd(srv, R, { op: 'getMany', keys: ['int', 'str', 'missing', 'yes', 'no'] });
  assert.equal(many.luaType, 'table');
  assert.deepEqual(many.value, { int: 42, str: 'overwritten', yes: true, no: false });
  assert.equal(many.n, 4, 'get({...}) has exactly the 4 present keys');
  const none = await cmd(srv, R, { op: 'getMany', keys: ['nope1', 'nope2'] });
  assert.equal(none.luaType, 'table', 'get({missing...}) is still a table');
  assert.equal(none.n, 0);

  // put({k1 = v1, ...})
  await cmd(srv, R, { op: 'putMany', entries: { m1: 'one', m2: { two: 2 }, m3: [3, 3, 3] } });
  assert.deepEqual((await cmd(srv, R, { op: 'getMany', keys: ['m1', 'm2', 'm3'] })).value,
    { m1: 'one', m2: { two: 2 }, m3: [3, 3, 3] });

  // delete(key) -> true if it existed
  assert.deepEqual(await cmd(srv, R, { op: 'delete', key: 'int' }), { result: true, luaType: 'boolean' });
  assert.deepEqual(await cmd(srv, R, { op: 'delete', key: 'int' }), { result: false, luaType: 'boolean' });
  assert.equal((await cmd(srv, R, { op: 'get', key: 'int' })).found, false);

  // delete({k1, ...}) -> number deleted
  assert.deepEqual(await cmd(srv, R, { op: 'deleteMany', keys: ['m1', 'm2', 'nope', 'm1'] }),
    { result: 2, luaType: 'number' });
  assert.deepEqual((await cmd(srv, R, { op: 'getMany', keys: ['m1', 'm2', 'm3'] })).value, { m3: [3, 3, 3] });

  // sync() exists and returns
  await cmd(srv, R, { op: 'put', key: 'synced', value: 'yes' });
  const sy = await cmd(srv, R, { op: 'sync' });
  assert.equal(sy.done, true);
  assert.equal((await cmd(srv, R, { op: 'get', key: 'synced' })).value, 'yes');
});

test('rooms and parties have separate storage', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  await cmd(srv, 'iso-1', { op: 'put', key: 'k', value: 'room 1' });
  assert.equal((await cmd(srv, 'iso-2', { op: 'get', key: 'k' })).found, false, 'room iso-2 does not see iso-1');
  await cmd(srv, 'iso-2', { op: 'put', key: 'k', value: 'room 2' });
  // same room id, another party (alarm.lua runs the same generic commands)
  assert.equal((await cmd(srv, 'iso-1', { op: 'get', key: 'k' }, 'alarm')).found, false,
    'party "alarm" room iso-1 does not see party "kv" room iso-1');
  await cmd(srv, 'iso-1', { op: 'put', key: 'k', value: 'alarm party' }, 'alarm');
  assert.equal((await cmd(srv, 'iso-1', { op: 'get', key: 'k' })).value, 'room 1');
  assert.equal((await cmd(srv, 'iso-2', { op: 'get', key: 'k' })).value, 'room 2');
  assert.equal((await cmd(srv, 'iso-1', { op: 'get', key: 'k' }, 'alarm')).value, 'alarm party');
  // a room whose id is a prefix of another's
  await cmd(srv, 'iso', { op: 'put', key: 'k2', value: 'short' });
  assert.equal(listKeys(await cmd(srv, 'iso', { op: 'list' })).join(','), 'k2');
});

test('list(): key order, prefix, start/startAfter/end, reverse, limit, entries:pairs()', { timeout: 15000 }, async () => {
  const srv = await sharedServer();
  const R = 'lists';
  const keys = ['L:c', 'L:a/2', 'L:b', 'L:a', 'L:a/3', 'L:b/1', 'L:a/1'];
  for (const [i, k] of keys.entries()) await cmd(srv, R, { op: 'put', key: k, value: { i, k } });
  const sorted = [...keys].sort();

  const check = async (options, expected, what) => {
    const r = await cmd(srv, R, { op: 'list', options });
    assert.deepEqual(listKeys(r), expected, `${what}: list(${JSON.stringify(options)})`);
    assert.equal(r.n, expected.length, `${what}: #entries`);
    if (expected.length) assert.equal(r.isArray, true, `${what}: the result is an array (1..n)`);
    assert.deepEqual(arr(r.pairsKeysHex), expected.map(hex), `${what}: entries:pairs() yields the same keys in order`);
    for (const e of entries(r)) assert.deepEqual(e.value, { i: keys.indexOf(e.key), k: e.key }, `${what}: value of ${e.key}`);
    return r;
  };

  await check(undefined, sorted, 'no options');
  await check({}, sorted, 'empty options');
  await check({ prefix: 'L:a/' }, ['L:a/1', 'L:a/2', 'L:a/3'], 'prefix');
  await check({ prefix: 'L:b' }, ['L:b', 'L:b/1'], 'prefix equal to a key');
  await check({ prefix: 'zzz' }, [], 'prefix matching nothing');
  await check({ start: 'L:a/2', end: 'L:b/1' }, ['L:a/2', 'L:a/3', 'L:b'], 'start inclusive, end exclusive');
  await check({ start: 'L:a/25' }, ['L:a/3', 'L:b', 'L:b/1', 'L:c'], 'start between keys');
  await check({ startAfter: 'L:a/2' }, ['L:a/3', 'L:b', 'L:b/1', 'L:c'], 'startAfter exclusive');
  await check({ startAfter: 'L:a/2', end: 'L:b/1' }, ['L:a/3', 'L:b'], 'startAfter + end');
  await check({ end: 'L:a/1' }, ['L:a'], 'end only');
  await check({ start: 'L:b', end: 'L:b' }, [], 'start == end');
  await check({ reverse: true }, [...sorted].reverse(), 'reverse');
  await check({ start: 'L:a/2', end: 'L:b/1', reverse: true }, ['L:b', 'L:a/3', 'L:a/2'],
    'reverse keeps start inclusive / end exclusive');
  await check({ limit: 2 }, ['L:a', 'L:a/1'], 'limit');
  await check({ limit: 2, reverse: true }, ['L:c', 'L:b/1'], 'reverse + limit gives the last keys');
  await check({ prefix: 'L:a/', reverse: true, limit: 2 }, ['L:a/3', 'L:a/2'], 'prefix + reverse + limit');
  await check({ prefix: 'L:a/', start: 'L:a/2' }, ['L:a/2', 'L:a/3'], 'prefix + start');
  await check({ limit: 100 }, sorted, 'limit larger than the room');

  // an empty room lists nothing
  const empty = await cmd(srv, 'lists-empty', { op: 'list' });
  assert.equal(empty.n, 0);
  assert.deepEqual(entries(empty), []);
});

test('list() orders keys by their bytes (NUL, upper case, UTF-8, 0xFF)', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'byte-order';
  await cmd(srv, R, { op: 'byteOrder', prefix: 'o:' });
  // the same keys as kv.lua's byteOrder op
  const raw = ['B', 'a', 'a\0', 'a\0b', 'a/1', 'aa', 'b', '\u00e9', null, '\0', '~'];
  const bufs = raw.map((k) => Buffer.concat([Buffer.from('o:'), k === null ? Buffer.from([0xff]) : Buffer.from(k, 'utf8')]));
  const expected = [...bufs].sort(Buffer.compare).map((b) => b.toString('hex'));
  const r = await cmd(srv, R, { op: 'list', options: { prefix: 'o:' } });
  assert.deepEqual(entries(r).map((e) => e.keyHex), expected, 'ascending byte order');
  assert.deepEqual(r.pairsKeysHex, expected, 'entries:pairs() in byte order');
  const rev = await cmd(srv, R, { op: 'list', options: { prefix: 'o:', reverse: true } });
  assert.deepEqual(entries(rev).map((e) => e.keyHex), [...expected].reverse(), 'descending byte order');
  // binary range bounds
  const fromA = await cmd(srv, R, {
    op: 'list',
    options: { start: { hex: Buffer.from('o:a\0').toString('hex') }, end: { hex: Buffer.from('o:b').toString('hex') } },
  });
  assert.deepEqual(entries(fromA).map((e) => e.keyHex),
    ['o:a\0', 'o:a\0b', 'o:a/1', 'o:aa'].map((k) => Buffer.from(k).toString('hex')), 'binary start/end');
  const byPrefix = async (prefixBuf) => entries(await cmd(srv, R, {
    op: 'list', options: { prefix: { hex: prefixBuf.toString('hex') } },
  })).map((e) => e.keyHex);
  const expectPrefix = (p) => expected.filter((h) => Buffer.from(h, 'hex').subarray(0, p.length).equals(p));
  for (const p of [Buffer.from('o:a'), Buffer.from('o:a\0'), Buffer.from([0x6f, 0x3a, 0xff]),
    Buffer.from([0x6f, 0x3a, 0xc3]), Buffer.from('o:'), Buffer.from('o:\0')]) {
    assert.deepEqual(await byPrefix(p), expectPrefix(p), `prefix ${p.toString('hex')}`);
  }
  assert.deepEqual(await byPrefix(Buffer.from([0xff, 0xff])), [], 'prefix of 0xFF bytes matching nothing');
  assert.deepEqual(await byPrefix(Buffer.alloc(3000, 0x6f)), [], 'prefix longer than any key');
  const get = await cmd(srv, R, { op: 'get', key: { hex: Buffer.from([0x6f, 0x3a, 0xff]).toString('hex') } });
  assert.equal(get.found, true, 'a key with an invalid UTF-8 byte can be read back');
});

test('special values round-trip exactly, also after a restart (-0, inf, 2^53, NUL, invalid UTF-8, depth 200, number vs string keys)',
  { timeout: 20000 }, async () => {
    const persist = mkTmp('luaparty-storage-values-');
    const srv = await start({ persist });
    const self = await cmd(srv, 'values', { op: 'selfTest' });
    assert.deepEqual(arr(self.wronglyEqual), [], 'the Lua comparator tells -0/0, 1/"1", ... apart');
    assert.equal(self.equalCopiesEqual, true, 'the Lua comparator finds two fresh copies equal');
    const w = await cmd(srv, 'values', { op: 'writeSpecials', prefix: 'sp:' });
    assert.ok(w.written > 20, `writeSpecials wrote ${w.written} values`);
    // read back in a later request of the same run
    const v1 = await cmd(srv, 'values', { op: 'checkSpecials', prefix: 'sp:' });
    assert.deepEqual(arr(v1.failures), [], 'same run, later request: every value equal');
    assert.equal(v1.ok, true);

    const st = await srv.stop();
    assert.equal(st.killed, false, `server exits on SIGTERM (${JSON.stringify(st)})`);
    const srv2 = await start({ persist });
    const v2 = await cmd(srv2, 'values', { op: 'checkSpecials', prefix: 'sp:' });
    assert.deepEqual(arr(v2.failures), [], 'after a restart: every value equal');
    assert.equal(v2.ok, true);
    assert.equal(v2.checked, w.written);
  });

test('put(key, nil) is accepted (nil is a storable value) and get then returns nil', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const fresh = await cmd(srv, 'nil-values', { op: 'putNil', key: 'never-set' });
  assert.equal(fresh.raised, false, `put('never-set', nil) raised: ${fresh.message}`);
  assert.equal(fresh.after, undefined);
  await cmd(srv, 'nil-values', { op: 'put', key: 'was-set', value: 'something' });
  const over = await cmd(srv, 'nil-values', { op: 'putNil', key: 'was-set' });
  assert.equal(over.raised, false, `put('was-set', nil) raised: ${over.message}`);
  assert.equal(over.after, undefined, 'after put(key, nil), get(key) is nil');
  assert.equal((await cmd(srv, 'nil-values', { op: 'get', key: 'was-set' })).found, false, 'and stays nil in a later request');
});

test('functions, coroutines, cycles and boolean keys raise a clear error and write nothing', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'refused';
  await cmd(srv, R, { op: 'put', key: 'bad:existing', value: 'old' });
  const r = await cmd(srv, R, { op: 'refuse', prefix: 'bad:' });
  const cases = ['function', 'closure', 'coroutine', 'cycle', 'deepCycle', 'boolKey', 'nestedBoolKey',
    'nestedFunction', 'functionInArray'];
  for (const name of cases) {
    const c = r[name];
    assert.ok(c, `case ${name} ran`);
    assert.equal(c.raised, true, `put(key, <${name}>) raises`);
    assert.equal(c.messageMentions, true,
      `the error of put(key, <${name}>) mentions /${c.expectedMention}/: got "${c.message}"`);
    assert.equal(c.written, false, `put(key, <${name}>) wrote nothing (same callback)`);
    assert.equal(c.raisedOnExisting, true, `put(existingKey, <${name}>) raises`);
    assert.equal(c.overwroteExisting, false, `put(existingKey, <${name}>) left the old value`);
  }
  // and nothing appears in a later request either
  const ex = await cmd(srv, R, { op: 'exists', keys: cases.map((c) => `bad:${c}`) });
  for (const name of cases) assert.equal(ex[`bad:${name}`], false, `bad:${name} absent in a later request`);
  assert.equal((await cmd(srv, R, { op: 'get', key: 'bad:existing' })).value, 'old');
});

test('put({...}) is atomic: a refused value writes none of the table\'s keys', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'refused-atomic';
  const r = await cmd(srv, R, { op: 'refuse', prefix: 'bad:' });
  const c = r.putTableAtomic;
  assert.equal(c.raised, true, 'put({..., atomBad = {f = print}}) raises');
  assert.equal(c.messageMentions, true, `the error mentions "function": got "${c.message}"`);
  const later = await cmd(srv, R, { op: 'list', options: { prefix: 'bad:atom' } });
  assert.deepEqual(listKeys(later), [], 'no key of the refused put({...}) was written (later request)');
  assert.deepEqual(arr(c.writtenKeys), [], 'no key of the refused put({...}) is visible right after the error');
});

test('get/put/delete with a bad key raise at the caller\'s line; plain calls and txn methods work', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const r = await cmd(srv, 'arg-errors', { op: 'argErrors', prefix: 'ae:' });
  for (const [name, re] of [['put', /keys must be strings/], ['get', /keys must be strings, got table/],
    ['delete', /keys must be strings, got boolean/], ['noKey', /string expected, got no value/]]) {
    const c = r[name];
    assert.equal(c.raised, true, `${name} with a bad key raises`);
    assert.match(c.message, re, `${name}'s message`);
    assert.ok(c.expected, 'the marker has a position');
    assert.equal(c.at, c.expected, `${name}'s error points at the calling line: ${c.message}`);
  }
  assert.equal(r.plain, 1, 'storage.put(storage, k, v) and storage.get(storage, k)');
  assert.deepEqual(r.txn, ['in txn', 1], 'txn:get and txn:delete({...}) inside a transaction');
});

test('keys: 2048 bytes work, 2049 raise', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'key-limits';
  const ok = await cmd(srv, R, { op: 'putKeyLen', len: 2048 });
  assert.equal(ok.raised, false, `2048-byte key refused: ${ok.message}`);
  assert.equal(ok.readBack, 'value of a long key');
  const later = await cmd(srv, R, { op: 'getKeyLen', len: 2048 });
  assert.equal(later.value, 'value of a long key', '2048-byte key read back in a later request');
  assert.equal(later.listed, 1, 'list() returns the 2048-byte key intact');
  const bad = await cmd(srv, R, { op: 'putKeyLen', len: 2049, ch: 'q' });
  assert.equal(bad.raised, true, '2049-byte key raises');
  assert.match(bad.message ?? '', /2048|2049|key/i, 'the error explains the key limit');
  assert.equal(bad.readBack ?? null, null, 'nothing written under the 2049-byte key');
});

test('values: over 128 KiB encoded raise and write nothing; 120 000 bytes work', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'value-limits';
  const big = await cmd(srv, R, { op: 'putRep', key: 'big', n: 128 * 1024 + 1 });
  assert.equal(big.raised, true, 'a 128 KiB + 1 byte string raises');
  assert.match(big.message ?? '', /limit|large|big|bytes/i, `clear error: ${big.message}`);
  assert.equal(big.present, false, 'nothing written');
  const huge = await cmd(srv, R, { op: 'putRep', key: 'huge', n: 200 * 1024 });
  assert.equal(huge.raised, true, 'a 200 KiB string raises with the default limit');
  assert.equal(huge.present, false);
  const fits = await cmd(srv, R, { op: 'putRep', key: 'fits', n: 120000 });
  assert.equal(fits.raised, false, `120 000 bytes refused: ${fits.message}`);
  assert.equal((await cmd(srv, R, { op: 'checkRep', key: 'fits', n: 120000 })).equal, true);
  assert.equal((await cmd(srv, R, { op: 'get', key: 'big' })).found, false, 'refused value absent in a later request');
});

test('--max-value 300000: a 200 KiB value works and survives a restart', { timeout: 15000 }, async () => {
  const persist = mkTmp('luaparty-storage-maxvalue-');
  const args = ['--max-value', '300000'];
  const srv = await start({ persist, args });
  const r = await cmd(srv, 'mv', { op: 'putRep', key: 'v', n: 200 * 1024, ch: 'z' });
  assert.equal(r.raised, false, `200 KiB refused with --max-value 300000: ${r.message}`);
  assert.equal(r.len, 200 * 1024);
  const over = await cmd(srv, 'mv', { op: 'putRep', key: 'over', n: 300001 });
  assert.equal(over.raised, true, 'over 300000 bytes still raises');
  await srv.stop();
  const srv2 = await start({ persist, args });
  const c = await cmd(srv2, 'mv', { op: 'checkRep', key: 'v', n: 200 * 1024, ch: 'z' });
  assert.deepEqual(c, { equal: true, len: 200 * 1024 });
});

async function txnPrepare(srv, R, p) {
  await cmd(srv, R, { op: 'put', key: `${p}z`, value: 'keep' });
}

test('transaction: commits its writes, returns what fn returned, txn sees its own writes', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'txn';
  await txnPrepare(srv, R, 'c:');
  const r = await cmd(srv, R, { op: 'txn', mode: 'commit', prefix: 'c:' });
  assert.equal(r.ok, true, `transaction raised: ${r.err}`);
  assert.deepEqual(r.returned, ['returned', 2, 3]);
  assert.deepEqual(r.inside, { delZ: true, getX: 1, storageGetX: 1, listed: 3, manyCount: 2 });
  assert.deepEqual(r.after, { x: 1, y: { nested: true }, before: 'yes' });
  const later = await cmd(srv, R, { op: 'getMany', keys: ['c:x', 'c:y', 'c:z', 'c:before'] });
  assert.deepEqual(later.value, { 'c:x': 1, 'c:y': { nested: true }, 'c:before': 'yes' });
});

test('transaction: an error inside undoes every write it made and propagates', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'txn';
  await txnPrepare(srv, R, 'e:');
  const r = await cmd(srv, R, { op: 'txn', mode: 'error', prefix: 'e:' });
  assert.equal(r.ok, false, 'the error propagates out of transaction()');
  assert.match(r.err ?? '', /boom-123/, 'with its message');
  assert.deepEqual(r.inside, { delZ: true, getX: 1, storageGetX: 1, listed: 3, manyCount: 2 }, 'writes were visible inside');
  assert.deepEqual(r.after, { z: 'keep', before: 'yes' }, 'txn writes undone, the write before the transaction kept');
  const later = await cmd(srv, R, { op: 'getMany', keys: ['e:x', 'e:y', 'e:z', 'e:before'] });
  assert.deepEqual(later.value, { 'e:z': 'keep', 'e:before': 'yes' }, 'a later request sees the same');

  await txnPrepare(srv, R, 'o:');
  const o = await cmd(srv, R, { op: 'txn', mode: 'errorObject', prefix: 'o:' });
  assert.equal(o.ok, false);
  assert.equal(o.errType, 'table', 'a table error value propagates as is');
  assert.equal(o.err, 'SAME SENTINEL', 'the very same error object');
  assert.deepEqual(o.after, { z: 'keep', before: 'yes' });
});

test('transaction: txn:rollback() undoes every write it made', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'txn';
  await txnPrepare(srv, R, 'r:');
  const r = await cmd(srv, R, { op: 'txn', mode: 'rollback', prefix: 'r:' });
  assert.deepEqual(r.after, { z: 'keep', before: 'yes' }, `after rollback (ok=${r.ok}, err=${r.err})`);
  const later = await cmd(srv, R, { op: 'getMany', keys: ['r:x', 'r:y', 'r:z', 'r:before'] });
  assert.deepEqual(later.value, { 'r:z': 'keep', 'r:before': 'yes' });
});

test('deleteAll() removes every key of the room and its alarm, not other rooms', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  for (let i = 0; i < 10; i++) await cmd(srv, 'wipe', { op: 'put', key: `k${i}`, value: i });
  await cmd(srv, 'wipe-other', { op: 'put', key: 'k1', value: 'other' });
  const at = Date.now() + 60000;
  await cmd(srv, 'wipe', { op: 'setAlarm', at });
  assert.equal((await cmd(srv, 'wipe', { op: 'getAlarm' })).exact, String(at));
  await cmd(srv, 'wipe', { op: 'deleteAll' });
  const l = await cmd(srv, 'wipe', { op: 'list' });
  assert.equal(l.n, 0, `keys left: ${listKeys(l)}`);
  const a = await cmd(srv, 'wipe', { op: 'getAlarm' });
  assert.equal(a.luaType, 'nil', `getAlarm() after deleteAll is ${a.exact}`);
  assert.equal((await cmd(srv, 'wipe-other', { op: 'get', key: 'k1' })).value, 'other');
  // the room still works afterwards
  await cmd(srv, 'wipe', { op: 'put', key: 'again', value: 1 });
  assert.deepEqual(listKeys(await cmd(srv, 'wipe', { op: 'list' })), ['again']);
});

test('idle unloading: a room without connections is unloaded, onStart runs again, storage intact', { timeout: 15000 }, async () => {
  const srv = await start({ args: ['--idle-timeout', '0.3'] });
  const url = `${srv.url}/parties/idle/quiet`;
  const r1 = await req(srv, url, { method: 'POST', body: JSON.stringify({ key: 'kept', value: 'yes' }) });
  assert.equal(r1.status, 200, r1.text);
  assert.equal(r1.json().starts, 1);
  await sleep(1200);
  const r2 = (await req(srv, url)).json();
  assert.equal(r2.starts, 2, `onStart ran again after > 1 s idle (starts=${r2.starts})`);
  assert.equal(r2.instanceStarts, 2);
  assert.equal(r2.kept, 'yes', 'earlier storage intact');
  await srv.stop();
});

test('idle unloading: a room with an open WebSocket is not unloaded', { timeout: 15000 }, async () => {
  const srv = await start({ args: ['--idle-timeout', '0.3'] });
  const url = `${srv.url}/parties/idle/busy`;
  const ws = await wsConnect(`${srv.wsUrl}/parties/idle/busy`);
  try {
    assert.equal(await ws.nextText(), 'hello 1');
    assert.equal((await req(srv, url)).json().starts, 1);
    await sleep(1200);
    const r = (await req(srv, url)).json();
    assert.equal(r.starts, 1, 'onStart did not run again while a WebSocket was open');
    assert.equal(r.instanceStarts, 1);
    ws.send('still there?');
    assert.equal(await ws.nextText(), 'echo still there?', 'the socket still works');
    assert.equal(ws.closeInfo, null, 'the socket was not closed');
  } finally {
    await closeAll([ws]);
  }
  // once the socket is gone the room is unloaded like any other
  await sleep(1200);
  assert.equal((await req(srv, url)).json().starts, 2, 'unloaded after the socket closed');
  await srv.stop();
});

test('--persist pointing at a regular file: exits non-zero within 5 s naming the path', { timeout: 10000 }, async () => {
  const dir = mkTmp('luaparty-storage-badpersist-');
  const file = path.join(dir, 'not-a-directory');
  fs.writeFileSync(file, 'just a file\n');
  const r = await runExpectExit({ project: PROJECT, persist: file, timeout: 5000 });
  assert.equal(r.timedOut, false, `still running after 5 s; logs:\n${r.logs}`);
  assert.notEqual(r.code, 0, `exit code ${r.code} (signal ${r.signal})`);
  assert.equal(r.signal, null, `died of signal ${r.signal}; logs:\n${r.logs}`);
  assert.ok(r.logs.includes(file), `the message names ${file}; logs:\n${r.logs}`);
  assert.doesNotMatch(r.logs, /listening on/, 'never listened');
  assert.equal(fs.readFileSync(file, 'utf8'), 'just a file\n', 'the file is left alone');
});

test('a luaparty.db full of garbage: refuses to start, names the file, leaves it unchanged', { timeout: 10000 }, async () => {
  const dir = mkTmp('luaparty-storage-garbage-');
  const db = path.join(dir, 'luaparty.db');
  const garbage = crypto.randomBytes(8192);
  fs.writeFileSync(db, garbage);
  const r = await runExpectExit({ project: PROJECT, persist: dir, timeout: 5000 });
  assert.equal(r.timedOut, false, `still running after 5 s; logs:\n${r.logs}`);
  assert.notEqual(r.code, 0, `exit code ${r.code} (signal ${r.signal}); logs:\n${r.logs}`);
  assert.equal(r.signal, null, `died of signal ${r.signal}; logs:\n${r.logs}`);
  assert.ok(r.logs.includes(db), `the message names ${db}; logs:\n${r.logs}`);
  assert.doesNotMatch(r.logs, /listening on/, 'never listened');
  assert.ok(fs.readFileSync(db).equals(garbage), 'the garbage file is byte for byte unchanged');
});
