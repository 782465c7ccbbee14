// The sandbox: what a party can reach, through globals and through require,
// with the JIT off (the default, CPU limit on) and on (--cpu-limit 0).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, httpRequest, wsConnect, waitFor, closeAll as closeAllOf } from './lib/server.mjs';

for (const args of [[], ['--cpu-limit', '0']]) {
  test(`no io, ffi, jit, os.exit or loadfile; debug is only traceback (${args.join(' ') || 'defaults'})`, async () => {
    const server = await startServer({ project: 'sandbox', args });
    try {
      const text = (await httpRequest(`${server.url}/parties/main/x`)).text;
      const got = {}; // the first "name=..." of each name: require results come before the globals
      for (const [k, v] of text.split(' ').map((kv) => kv.split('='))) if (!(k in got)) got[k] = v;
      for (const name of ['ffi', 'io', 'jit', 'jit.opt']) assert.equal(got[name], 'ERR', `require "${name}" must fail`);
      assert.equal(got.debug, 'table[traceback]');
      for (const name of ['string', 'cjson', 'luaparty', 'table', 'math', 'os', 'bit', 'coroutine']) assert.equal(got[name], 'table', name);
      assert.match(text, /io=nil jit=nil os\.exit=nil loadfile=nil/);
    } finally {
      await server.stop();
    }
  });
}

test('load and loadstring compile source and refuse bytecode, given as a string or by a reader', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    const parts = (await httpRequest(`${server.url}/parties/main/load?load=1`)).text.split('|');
    const refused = 'binary chunks cannot be loaded in a party (LuaJIT does not check them): load Lua source';
    assert.deepEqual(parts.slice(0, 6), ['nil', refused, 'nil', refused, 'nil', refused]);
    assert.equal(parts[6], '2', 'source loads, with its varargs');
    assert.equal(parts[7], 'nil');
    assert.match(parts[8], /^bad:1: unexpected symbol near '\+'$/, 'a syntax error names the chunk and line');
    assert.equal(parts[9], '7', 'the env argument still applies');
  } finally {
    await server.stop();
  }
});

test('math, bit, os and debug open on first use, as globals and through require, the same tables', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    const text = (await httpRequest(`${server.url}/parties/main/lazy-g?lazy=global`)).text;
    assert.equal(text, 'true|2|2|number|nil|nil|true|true|true|function|nil|true|nil');
  } finally {
    await server.stop();
  }
});

test('the luaparty module, the global fetch and the storage methods load on first use', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    const text = (await httpRequest(`${server.url}/parties/main/lazy-r?lazy=runtime`)).text;
    assert.equal(text, 'true|true|true|function|true|true|function|true');
  } finally {
    await server.stop();
  }
});

test('string and table open on first use: methods, getmetatable(""), globals and require agree', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    assert.equal((await httpRequest(`${server.url}/parties/main/lazy-str?lazy=strings`)).text,
      'truetrue|abab|true|true|true|true|7-x|4|1');
    assert.equal((await httpRequest(`${server.url}/parties/main/lazy-mt?lazy=metatable`)).text, 'table|true|Q');
  } finally {
    await server.stop();
  }
});

test('math, os and debug open on first use even after the party dropped the package global', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    assert.equal((await httpRequest(`${server.url}/parties/main/lazy-p?lazy=nopackage`)).text, '2|number|function');
  } finally {
    await server.stop();
  }
});

test('a strict-mode metatable set on _G keeps math, bit, os and debug reachable', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    const res = await httpRequest(`${server.url}/parties/main/lazy-s?lazy=strict`);
    assert.equal(res.text, '7|3|function|nil|function|false|undefined global undefined_thing');
  } finally {
    await server.stop();
  }
});

test('luaparty.validUtf8, luaparty.queryParam and req:query', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    const text = (await httpRequest(`${server.url}/parties/main/x?helpers=1&name=Ann%20Lee`)).text;
    assert.equal(text, 'true|false|Ann Lee|nil|two words');
  } finally {
    await server.stop();
  }
});

// The callbacks C calls itself (src/lua_room.c): found through the class's
// metatable, a no-op when missing or false, the runtime module not loaded
// for them; onRequest's answers of every kind.
test('callbacks from a base class; a party without any; no runtime module loaded for them', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    const c = await wsConnect(`${server.wsUrl}/parties/inherit/r1?_pk=ann`);
    assert.equal(await c.nextText(), 'hello ann from /parties/inherit/r1?_pk=ann');
    c.send('hi');
    assert.equal(await c.nextText(), 'echo|hi|r1|true', 'a class with a metatable: through the runtime');
    const p = await wsConnect(`${server.wsUrl}/parties/plain/r1?_pk=bo`);
    assert.equal(await p.nextText(), 'hi bo');
    p.send('x');
    assert.equal(await p.nextText(), 'x|false', 'a plain class: C calls it, no runtime loaded');
    await p.closeAndWait();
    await c.closeAndWait(); // onClose = false: nothing to run, nothing logged
    const r = await httpRequest(`${server.url}/parties/inherit/r1`, { method: 'POST', body: 'x' });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'base POST x');
    const b = await wsConnect(`${server.wsUrl}/parties/bare/r2`);
    b.send('ignored');
    await assert.rejects(b.next(300), /no message/);
    await b.closeAndWait();
    const nf = await httpRequest(`${server.url}/parties/bare/r2`);
    assert.equal(nf.status, 404);
    assert.equal(nf.text, 'Party bare has no onRequest');
    assert.doesNotMatch(server.logs(), /error/i);
  } finally {
    await server.stop();
  }
});

test('onRequest answers: nil, a string, a Response, a table with a status, and a number refused', async () => {
  const server = await startServer({ project: 'sandbox' });
  const get = (what, room = 'a') => httpRequest(`${server.url}/parties/answers/${room}?what=${what}`);
  try {
    let r = await get('nil');
    assert.equal(r.status, 204);
    r = await get('string');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'a string');
    assert.match(r.headers.get('content-type'), /^text\/plain/);
    r = await get('response');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/json');
    assert.equal(r.text, '{"ok":true}');
    r = await get('table');
    assert.equal(r.status, 202);
    assert.equal(r.text, 'a plain table');
    assert.equal(r.headers.get('x-kind'), 'table');
    r = await get('number');
    assert.equal(r.status, 500);
    assert.match(r.text, /onRequest must return a Response, a string or nil \(got number\)/);
    r = await get('runtime', 'fresh'); // a room whose answers so far needed no runtime
    assert.equal(r.text, 'true|true|function', 'the runtime module loads for room.storage, not before');
    r = await httpRequest(`${server.url}/parties/answers/a?what=json`, { method: 'POST', body: '{bad' });
    assert.match(r.text, /^false\|request body is not valid JSON: /);
  } finally {
    await server.stop();
  }
});

test('a class whose __index raises or loops: the event fails or trips the CPU limit, the server serves on', async () => {
  const server = await startServer({ project: 'sandbox', args: ['--cpu-limit', '200'] });
  try {
    const t = await wsConnect(`${server.wsUrl}/parties/trap/t1`);
    t.send('hello');
    await waitFor(() => /no onMessage today/.test(server.logs()), 3000, { what: 'the lookup error logged' });
    await t.closeAndWait(); // onClose's lookup loops: the CPU limit stops it
    await waitFor(() => /CPU time limit/.test(server.logs()), 5000, { what: 'the CPU limit to stop the loop' });
    const r = await httpRequest(`${server.url}/parties/plain/ok`);
    assert.equal(r.status, 404, 'another room still answers');
  } finally {
    await server.stop();
  }
});

test('one room breaking its metatables and libraries leaves every other room whole', async () => {
  const server = await startServer({ project: 'sandbox' });
  try {
    const b = await httpRequest(`${server.url}/parties/mutate/a?act=break`, { method: 'POST', body: 'x' });
    assert.equal(b.text, 'broken');
    const a = await httpRequest(`${server.url}/parties/mutate/a`, { method: 'POST', body: 'x' });
    assert.equal(a.status, 500, 'room a is broken indeed');
    const s = await wsConnect(`${server.wsUrl}/parties/mutate/a?break=1`);
    const r = await httpRequest(`${server.url}/parties/mutate/b`, { method: 'POST', body: 'body' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.text, 'body|OK|0');
    const c = await wsConnect(`${server.wsUrl}/parties/mutate/b?_pk=zed`);
    assert.equal(await c.nextText(), 'Connection(zed)|function');
    await closeAllOf([s, c]);
  } finally {
    await server.stop();
  }
});
