// The reusable parties in parties/ (presence, chat, connections), loaded by
// tests/projects/ecosystem/app through paths outside the project directory
// ("../../../../parties/presence.lua").
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  REPO, startServerPatient as start, httpRequest, wsConnect, waitFor, closeAll, mkTmp, sleep,
} from './lib/server.mjs';
import { sharedServer } from './lib/fixtures.mjs';

const PROJECT = 'ecosystem/app';

const server = sharedServer({ project: PROJECT, persist: mkTmp('luaparty-parties-'), startTimeout: 15000 });

const ws = (p, opts) => wsConnect(`${server.wsUrl}${p}`, opts);
const get = async (p) => {
  const res = await httpRequest(`${server.url}${p}`);
  assert.equal(res.status, 200, `GET ${p}: ${res.status} ${res.text}`);
  return res.json();
};
const names = (users) => users.map((u) => u.name);

/** The next JSON message of a given type (others are skipped). */
async function nextOfType(c, type, ms = 3000) {
  const m = await c.nextMatching((x) => { try { return JSON.parse(x.text).type === type; } catch { return false; } }, ms);
  return JSON.parse(m.text);
}

/** Asserts that no message arrives on c within ms. */
async function assertQuiet(c, ms = 200) {
  await assert.rejects(c.next(ms), /no message/);
}

test('party scripts outside the project directory load (startup lists their paths)', async () => {
  for (const name of ['presence', 'chat', 'connections']) {
    assert.match(server.logs(), new RegExp(`party ${name}\\s+http://127\\.0\\.0\\.1:\\d+/parties/${name}/:room\\s+\\(\\.\\./\\.\\./\\.\\./\\.\\./parties/${name}\\.lua\\)`));
  }
  for (const f of ['presence.lua', 'chat.lua', 'connections.lua']) {
    const first = fs.readFileSync(path.join(REPO, 'parties', f), 'utf8').split('\n')[0];
    assert.match(first, /^-- \S+\.lua - /, `${f} starts with a comment saying what it does`);
  }
});

describe('presence', () => {
  test('sync for newcomers, join/leave for the others, names from ?name= or the id', { timeout: 15000 }, async () => {
    const clients = [];
    try {
      const a = await ws('/parties/presence/p1?name=Alice&_pk=id-a');
      clients.push(a);
      const syncA = await a.nextJson();
      assert.deepEqual(syncA, { type: 'sync', self: { id: 'id-a', name: 'Alice' }, users: [{ id: 'id-a', name: 'Alice' }] });

      const b = await ws(`/parties/presence/p1?_pk=id-b&name=${encodeURIComponent('Zoë K')}`);
      clients.push(b);
      const syncB = await b.nextJson();
      assert.equal(syncB.type, 'sync');
      assert.deepEqual(syncB.self, { id: 'id-b', name: 'Zoë K' });
      assert.deepEqual(syncB.users, [{ id: 'id-a', name: 'Alice' }, { id: 'id-b', name: 'Zoë K' }]);
      assert.deepEqual(await a.nextJson(), { type: 'join', user: { id: 'id-b', name: 'Zoë K' } });

      // a late joiner without a name is known by its connection id and sees everyone
      const c = await ws('/parties/presence/p1');
      clients.push(c);
      const syncC = await c.nextJson();
      assert.equal(syncC.self.name, syncC.self.id);
      assert.deepEqual(names(syncC.users), ['Alice', 'Zoë K', syncC.self.id]);
      assert.deepEqual((await a.nextJson()).user, syncC.self);
      assert.deepEqual((await b.nextJson()).user, syncC.self);
      await assertQuiet(c); // no join event about itself

      assert.deepEqual(names((await get('/parties/presence/p1')).users), ['Alice', 'Zoë K', syncC.self.id]);

      // Bob leaves: the two others hear it, the list shrinks
      await b.closeAndWait();
      assert.deepEqual(await a.nextJson(), { type: 'leave', user: { id: 'id-b', name: 'Zoë K' } });
      assert.deepEqual(await c.nextJson(), { type: 'leave', user: { id: 'id-b', name: 'Zoë K' } });
      assert.deepEqual(names((await get('/parties/presence/p1')).users), ['Alice', syncC.self.id]);

      // rename reaches everyone; a bad one and an unknown message get errors
      a.sendJson({ type: 'rename', name: '  Alicia ' });
      assert.deepEqual(await a.nextJson(), { type: 'rename', user: { id: 'id-a', name: 'Alicia' } });
      assert.deepEqual(await c.nextJson(), { type: 'rename', user: { id: 'id-a', name: 'Alicia' } });
      a.sendJson({ type: 'rename', name: '' });
      assert.equal((await a.nextJson()).type, 'error');
      a.send('hello?');
      assert.equal((await a.nextJson()).type, 'error');
      await assertQuiet(c);
      assert.deepEqual(names((await get('/parties/presence/p1')).users), ['Alicia', syncC.self.id]);
    } finally {
      await closeAll(clients);
    }
  });

  test('an empty room lists [] and rooms are separate', async () => {
    assert.deepEqual(await get('/parties/presence/empty-room'), { users: [] });
    const x = await ws('/parties/presence/p2?name=Xavier');
    try {
      assert.deepEqual(names((await x.nextJson()).users), ['Xavier']);
      assert.deepEqual(await get('/parties/presence/other-room'), { users: [] });
      const bad = await httpRequest(`${server.url}/parties/presence/p2`, { method: 'POST', body: 'x' });
      assert.equal(bad.status, 405);
    } finally {
      await closeAll([x]);
    }
  });

  test('two connections with one id (two tabs): one join, leave only when the last closes', { timeout: 15000 }, async () => {
    const clients = [];
    try {
      const watcher = await ws('/parties/presence/p3?name=Watcher');
      clients.push(watcher);
      await watcher.nextJson();
      const tab1 = await ws('/parties/presence/p3?_pk=same&name=Tabby');
      clients.push(tab1);
      await tab1.nextJson();
      assert.deepEqual(await watcher.nextJson(), { type: 'join', user: { id: 'same', name: 'Tabby' } });
      const tab2 = await ws('/parties/presence/p3?_pk=same&name=Other');
      clients.push(tab2);
      const sync2 = await tab2.nextJson();
      assert.deepEqual(sync2.self, { id: 'same', name: 'Tabby' }, 'the second tab keeps the user\'s name');
      assert.deepEqual(names(sync2.users), ['Watcher', 'Tabby']);
      await assertQuiet(watcher);
      await tab1.closeAndWait();
      await assertQuiet(watcher, 300);
      await tab2.closeAndWait();
      assert.deepEqual(await watcher.nextJson(), { type: 'leave', user: { id: 'same', name: 'Tabby' } });
    } finally {
      await closeAll(clients);
    }
  });

  test('names: control characters stripped, invalid UTF-8 or blank falls back to the id, long names cut', async () => {
    const clients = [];
    try {
      const bad = await ws('/parties/presence/p4?_pk=bad-utf8&name=%FF%FE');
      clients.push(bad);
      assert.equal((await bad.nextJson()).self.name, 'bad-utf8');
      const blank = await ws('/parties/presence/p4?_pk=blank&name=%20%20');
      clients.push(blank);
      assert.equal((await blank.nextJson()).self.name, 'blank');
      const ctl = await ws('/parties/presence/p4?_pk=ctl&name=a%0Ab%07c');
      clients.push(ctl);
      assert.equal((await ctl.nextJson()).self.name, 'abc');
      const long = await ws(`/parties/presence/p4?_pk=long&name=${encodeURIComponent('é'.repeat(40))}`);
      clients.push(long);
      const n = (await long.nextJson()).self.name;
      assert.equal(n, 'é'.repeat(32), 'cut to 64 bytes on a character boundary');
    } finally {
      await closeAll(clients);
    }
  });
});

describe('chat', () => {
  test('hello, join, broadcast to the room (the sender too), errors before hello', { timeout: 15000 }, async () => {
    const clients = [];
    try {
      const a = await ws('/parties/chat/c1?_pk=chat-a');
      clients.push(a);
      assert.deepEqual(await a.nextJson(), { type: 'history', messages: [] });
      a.sendJson({ type: 'message', text: 'too early' });
      assert.equal((await a.nextJson()).type, 'error');
      a.sendJson({ type: 'hello', name: 'Ann' });
      assert.deepEqual(await a.nextJson(), { type: 'welcome', id: 'chat-a', name: 'Ann' });

      const b = await ws('/parties/chat/c1?_pk=chat-b');
      clients.push(b);
      assert.deepEqual(await b.nextJson(), { type: 'history', messages: [] });
      b.sendJson({ type: 'join', name: 'Ben' });
      assert.deepEqual(await b.nextJson(), { type: 'welcome', id: 'chat-b', name: 'Ben' });
      assert.deepEqual(await a.nextJson(), { type: 'join', id: 'chat-b', name: 'Ben' });

      a.sendJson({ type: 'message', text: 'hi Ben' });
      const ma = await a.nextJson();
      const mb = await b.nextJson();
      assert.deepEqual(ma, mb);
      assert.equal(ma.type, 'message');
      assert.equal(ma.seq, 1);
      assert.equal(ma.id, 'chat-a');
      assert.equal(ma.name, 'Ann');
      assert.equal(ma.text, 'hi Ben');
      assert.ok(Math.abs(ma.ts - Date.now()) < 120000, `ts ${ma.ts} is epoch ms`);

      b.send('plain text is a message too');
      assert.equal((await a.nextJson()).text, 'plain text is a message too');
      assert.equal((await b.nextJson()).seq, 2);

      // bad messages: too long, unknown type; invalid UTF-8 can only come by HTTP
      // (WebSocket text frames are checked by the server): refused, not broadcast
      const raw = Buffer.concat([Buffer.from('{"name":"x","text":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
      const badUtf8 = await httpRequest(`${server.url}/parties/chat/c1`, { method: 'POST', body: raw });
      assert.equal(badUtf8.status, 400);
      assert.match(badUtf8.json().error, /UTF-8/);
      b.sendJson({ type: 'message', text: 'x'.repeat(2001) });
      assert.match((await b.nextJson()).message, /longer/);
      b.sendJson({ type: 'dance' });
      assert.match((await b.nextJson()).message, /unknown/);
      await assertQuiet(a);

      await b.closeAndWait();
      assert.deepEqual(await a.nextJson(), { type: 'leave', id: 'chat-b', name: 'Ben' });

      const hist = await get('/parties/chat/c1');
      assert.deepEqual(hist.messages.map((m) => m.text), ['hi Ben', 'plain text is a message too']);
      assert.deepEqual(await get('/parties/chat/other-room'), { messages: [] });
    } finally {
      await closeAll(clients);
    }
  });

  test('history is capped by CHAT_HISTORY (5 in vars); newcomers and GET see the last 5; POST adds', { timeout: 15000 }, async () => {
    const a = await ws('/parties/chat/capped?name=Cap');
    try {
      assert.deepEqual(await a.nextJson(), { type: 'history', messages: [] });
      for (let i = 1; i <= 6; i++) {
        a.sendJson({ type: 'message', text: `m${i}` });
        assert.equal((await nextOfType(a, 'message')).text, `m${i}`);
      }
      const post = await httpRequest(`${server.url}/parties/chat/capped`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bot', text: 'm7' }),
      });
      assert.equal(post.status, 201);
      assert.equal(post.json().seq, 7);
      assert.equal((await nextOfType(a, 'message')).name, 'bot');
      const badPost = await httpRequest(`${server.url}/parties/chat/capped`, { method: 'POST', body: '{"text":"no name"}' });
      assert.equal(badPost.status, 400);

      const late = await ws('/parties/chat/capped');
      const h = await late.nextJson();
      await closeAll([late]);
      assert.deepEqual(h.messages.map((m) => m.text), ['m3', 'm4', 'm5', 'm6', 'm7']);
      assert.deepEqual(h.messages.map((m) => m.seq), [3, 4, 5, 6, 7]);
      assert.deepEqual((await get('/parties/chat/capped')).messages.map((m) => m.text), ['m3', 'm4', 'm5', 'm6', 'm7']);
    } finally {
      await closeAll([a]);
    }
  });

  test('history survives a restart; a smaller cap deletes older messages from storage', { timeout: 30000 }, async () => {
    const dir = mkTmp('luaparty-chatpersist-');
    // the same scripts, from a project in a temp dir, with a cap of 2
    const small = mkTmp('luaparty-chatsmall-');
    const rel = (f) => path.relative(small, path.join(REPO, 'parties', f));
    fs.writeFileSync(path.join(small, 'partykit.json'), JSON.stringify({
      name: 'chat-small', main: rel('presence.lua'), parties: { chat: rel('chat.lua') }, vars: { CHAT_HISTORY: 2 },
    }));
    const texts = async (s) => (await httpRequest(`${s.url}/parties/chat/keep`)).json().messages.map((m) => m.text);
    let s = await start({ project: PROJECT, persist: dir });
    try {
      for (const t of ['one', 'two', 'three', 'four']) {
        const r = await httpRequest(`${s.url}/parties/chat/keep`, { method: 'POST', body: JSON.stringify({ name: 'p', text: t }) });
        assert.equal(r.status, 201);
      }
      assert.deepEqual(await texts(s), ['one', 'two', 'three', 'four']);
      await s.stop();

      s = await start({ project: PROJECT, persist: dir });
      assert.deepEqual(await texts(s), ['one', 'two', 'three', 'four'], 'same history after a restart');
      const r = await httpRequest(`${s.url}/parties/chat/keep`, { method: 'POST', body: JSON.stringify({ name: 'p', text: 'five' }) });
      assert.equal(r.json().seq, 5, 'the sequence continues');
      await s.stop();

      s = await start({ project: small, persist: dir });
      assert.deepEqual(await texts(s), ['four', 'five'], 'cap 2 keeps the last two');
      await s.stop();

      s = await start({ project: PROJECT, persist: dir });
      assert.deepEqual(await texts(s), ['four', 'five'], 'the older ones were deleted, not hidden');
    } finally {
      await s.stop();
    }
  });
});

describe('connections', () => {
  test('counts per room from the main party, pushed to listeners; never below zero; reset', { timeout: 20000 }, async () => {
    const clients = [];
    try {
      const listener = await ws('/parties/connections/active-connections');
      clients.push(listener);
      const initial = await listener.nextJson();
      assert.equal(typeof initial, 'object', 'a listener gets the counts at once');

      const a1 = await ws('/parties/main/count-a');
      const a2 = await ws('/parties/main/count-a');
      const b1 = await ws('/parties/main/count-b');
      clients.push(a1, a2, b1);
      await waitFor(async () => {
        const c = await get('/parties/connections/active-connections');
        return c['count-a'] === 2 && c['count-b'] === 1;
      }, 5000, { what: 'count-a 2, count-b 1' });
      // the listener saw the same, pushed
      await listener.nextMatching((m) => { const c = JSON.parse(m.text); return c['count-a'] === 2 && c['count-b'] === 1; }, 3000);

      await a2.closeAndWait();
      await waitFor(async () => (await get('/parties/connections/active-connections'))['count-a'] === 1, 5000, { what: 'count-a 1' });

      const url = `${server.url}/parties/connections/active-connections`;
      const post = (body) => httpRequest(url, { method: 'POST', body: JSON.stringify(body) });
      // a disconnect for a room with no connections stays at 0
      let r = await post({ type: 'disconnect', roomId: 'ghost' });
      assert.equal(r.json().ghost, 0);
      r = await post({ type: 'connect', roomId: 'lobby', party: 'presence' });
      assert.equal(r.json()['presence/lobby'], 1);
      assert.equal((await post({ type: 'bogus', roomId: 'x' })).status, 400);
      assert.equal((await httpRequest(url, { method: 'POST', body: 'not json' })).status, 400);
      assert.equal((await httpRequest(url, { method: 'DELETE' })).status, 405);

      r = await post({ type: 'reset' });
      assert.deepEqual(r.json(), {});
      await listener.nextMatching((m) => m.text === '{}', 3000);
    } finally {
      await closeAll(clients);
    }
    await sleep(50);
  });
});

describe('examples/chat (its own party, the e2e page\'s server)', () => {
  test('history on connect, hello/welcome with users, broadcast, leave, GET; history survives a restart', { timeout: 20000 }, async () => {
    const dir = mkTmp('luaparty-example-chat-');
    let s = await start({ project: 'examples/chat', persist: dir });
    const clients = [];
    try {
      const url = (q = '') => `${s.wsUrl}/parties/main/room1${q}`;
      const a = await wsConnect(url('?_pk=ex-a'));
      clients.push(a);
      assert.deepEqual(await a.nextJson(), { type: 'history', messages: [] });
      a.sendJson({ type: 'message', text: 'before hello' });
      assert.equal((await a.nextJson()).type, 'error');
      a.sendJson({ type: 'hello', name: 'Ann' });
      assert.deepEqual(await a.nextJson(), { type: 'welcome', id: 'ex-a', name: 'Ann', users: [{ id: 'ex-a', name: 'Ann' }] });
      const b = await wsConnect(url('?_pk=ex-b'));
      clients.push(b);
      await b.nextJson();
      b.sendJson({ type: 'join', name: 'Ben' });
      const welcome = await b.nextJson();
      assert.deepEqual(welcome.users.map((u) => u.name).sort(), ['Ann', 'Ben']);
      assert.deepEqual(await a.nextJson(), { type: 'join', id: 'ex-b', name: 'Ben' });
      a.sendJson({ type: 'message', text: 'hi' });
      const got = await b.nextJson();
      assert.deepEqual({ ...got, ts: 0 }, { type: 'message', seq: 1, id: 'ex-a', name: 'Ann', text: 'hi', ts: 0 });
      assert.deepEqual(await a.nextJson(), got);
      a.send('not json');
      assert.equal((await a.nextJson()).type, 'error');
      await b.closeAndWait();
      assert.deepEqual(await a.nextJson(), { type: 'leave', id: 'ex-b', name: 'Ben' });
      await closeAll(clients);
      await s.stop();

      s = await start({ project: 'examples/chat', persist: dir });
      const res = await httpRequest(`${s.url}/parties/main/room1`);
      assert.deepEqual(res.json().messages.map((m) => [m.name, m.text]), [['Ann', 'hi']]);
      const page = await httpRequest(`${s.url}/`);
      assert.equal(page.status, 200);
      assert.match(page.text, /luaparty chat/);
    } finally {
      await closeAll(clients);
      await s.stop();
    }
  });
});
