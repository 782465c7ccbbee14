// parties/yjs.lua (lua/luaparty/yjs.lua) with unchanged npm clients:
// WebsocketProvider (y-websocket) and YPartyKitProvider (y-partykit), plus
// raw y-protocols messages (lib0) for what providers never send.
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, wsConnect, closeAll, waitFor, sleep, mkTmp, httpRequest } from './lib/server.mjs';
import { sharedServer } from './lib/fixtures.mjs';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';
import {
  Y, provider, synced, converge, docJson, docOf, syncMessage, awarenessMessage, readMessage, rng, randomEdit, randomHistory,
} from './lib/yjs.mjs';

let providers = [];
let sockets = [];
afterEach(async () => {
  for (const p of providers) {
    p.destroy();
    p.awareness.destroy(); // its 30 s check timer would keep node alive
  }
  providers = [];
  await closeAll(sockets);
  sockets = [];
});
const open = (...args) => {
  const p = provider(...args);
  providers.push(p);
  return p;
};
const raw = async (srv, path, opts) => {
  const c = await wsConnect(`${srv.wsUrl}${path}`, opts);
  sockets.push(c);
  return c;
};
/** The server's document (GET on the room) as a Y.Doc, and its bytes. */
async function serverDoc(srv, party, room) {
  const res = await fetch(`${srv.url}/parties/${party}/${room}`);
  assert.equal(res.status, 200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  return { bytes, doc: docOf(bytes) };
}
const info = async (srv, party, room) => (await httpRequest(`${srv.url}/parties/${party}/${room}?info`)).json();
/** Next message of a raw client, read as y-protocols. */
const nextY = async (c, ms) => {
  const m = await c.next(ms);
  assert.ok(m.isBinary, `binary frame expected, got text ${m.data}`);
  return readMessage(m.data);
};
const KINDS = ['websocket', 'partykit'];

describe('yjs party: sync with unchanged providers', () => {
  const srv = sharedServer({ project: 'yjs' });

  test('a y-websocket and a y-partykit provider converge on concurrent text, map and array edits and deletes', async () => {
    const [a, b] = KINDS.map((k) => open(k, srv, 'converge'));
    await Promise.all([synced(a), synced(b)]);
    const r = rng(42);
    // concurrent: both edit before hearing from each other, many times
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 3; i++) { randomEdit(a.doc, r); randomEdit(b.doc, r); }
      if (round % 4 === 0) await sleep(5);
    }
    a.doc.getText('text').insert(0, 'A:');
    b.doc.getText('text').insert(0, 'B:');
    a.doc.getMap('map').set('same', 'from a');
    b.doc.getMap('map').set('same', 'from b');
    a.doc.getArray('array').insert(0, ['a0', 'a1']);
    b.doc.getArray('array').delete(0, Math.min(1, b.doc.getArray('array').length));
    const json = await converge([a.doc, b.doc]);
    assert.ok(json.text.length > 0 && Object.keys(json.map).length > 0, 'edits of every kind arrived');
    assert.ok(['from a', 'from b'].includes(a.doc.getMap('map').get('same')));
    // the server's stored document is the same document
    await waitFor(async () => JSON.stringify(docJson((await serverDoc(srv, 'yjs', 'converge')).doc)) === JSON.stringify(docJson(a.doc)),
      5000, { what: 'the server document to match' });
  });

  test('a provider joining late gets the full state', async () => {
    const a = open('websocket', srv, 'late');
    await synced(a);
    const { updates } = randomHistory(3, { edits: 80 });
    for (const u of updates) Y.applyUpdate(a.doc, u);
    a.doc.getText('text').insert(0, 'late joiner sees this');
    for (const kind of KINDS) {
      const c = open(kind, srv, 'late');
      await synced(c);
      await converge([a.doc, c.doc]);
      assert.match(c.doc.getText('text').toString(), /late joiner sees this/, kind);
    }
  });

  test('sync step 2 answers with only what the client lacks', async () => {
    const a = open('websocket', srv, 'svaware');
    await synced(a);
    a.doc.getText('text').insert(0, 'x'.repeat(5000));
    await waitFor(async () => (await info(srv, 'yjs', 'svaware')).documentBytes > 5000, 5000, { what: 'the text stored' });
    const { bytes: docBytes } = await serverDoc(srv, 'yjs', 'svaware');
    // a client that has everything gets (almost) nothing; one with nothing gets it all
    for (const [what, have] of [['has it all', Y.encodeStateAsUpdate(a.doc)], ['has nothing', null], ['has half', 'half']]) {
      const local = new Y.Doc();
      if (have === 'half') {
        Y.applyUpdate(local, Y.encodeStateAsUpdate(a.doc));
        local.getText('text').delete(0, 1); // and something the server lacks
      } else if (have) {
        Y.applyUpdate(local, have);
      }
      const sv = Y.encodeStateVector(local);
      const c = await raw(srv, '/parties/yjs/svaware');
      const first = await nextY(c);
      assert.equal(first.type, 'sync');
      assert.equal(first.step, 0, 'the server sends its state vector first');
      assert.deepEqual(Buffer.from(first.payload), Buffer.from(Y.encodeStateVectorFromUpdate(docBytes)));
      c.send(syncMessage(0, sv));
      const answer = await nextY(c);
      assert.equal(answer.step, 1, `${what}: sync step 2`);
      assert.deepEqual(Buffer.from(answer.payload), Buffer.from(Y.diffUpdate(docBytes, sv)), `${what}: exactly Y.diffUpdate of the document`);
      if (have) assert.ok(answer.payload.length < 100, `${what}: ${answer.payload.length} bytes`);
      else assert.ok(answer.payload.length > 5000, `${what}: ${answer.payload.length} bytes`);
      c.close();
    }
  });

  test('awareness appears for the others and disappears when its provider closes', async () => {
    const [a, b] = KINDS.map((k) => open(k, srv, 'aware'));
    await Promise.all([synced(a), synced(b)]);
    a.awareness.setLocalState({ user: 'ann', cursor: 3 });
    await waitFor(() => b.awareness.getStates().get(a.doc.clientID)?.user === 'ann', 5000, { what: "b sees ann's awareness" });
    // a late joiner gets the states there are
    const c = open('websocket', srv, 'aware');
    await waitFor(() => c.awareness.getStates().get(a.doc.clientID)?.user === 'ann', 5000, { what: 'c sees it on connect' });
    a.destroy(); // closes the socket: the server removes ann for the others
    await waitFor(() => !b.awareness.getStates().has(a.doc.clientID), 5000, { what: "ann's awareness removed from b" });
    await waitFor(() => !c.awareness.getStates().has(a.doc.clientID), 5000, { what: "ann's awareness removed from c" });
  });

  test('an awareness query is answered with every state; a stale clock is not relayed', async () => {
    const a = await raw(srv, '/parties/yjs/query');
    const b = await raw(srv, '/parties/yjs/query');
    await nextY(a);
    await nextY(b);
    a.send(awarenessMessage([{ client: 77, clock: 2, state: { n: 'a' } }]));
    const seen = await nextY(b);
    assert.deepEqual(seen.entries, [{ client: 77, clock: 2, state: { n: 'a' } }]);
    a.send(awarenessMessage([{ client: 77, clock: 1, state: { n: 'old' } }])); // older: dropped
    b.send(Uint8Array.from([3])); // query
    const all = await nextY(b);
    assert.deepEqual(all.entries, [{ client: 77, clock: 2, state: { n: 'a' } }]);
    a.close();
    const gone = await nextY(b);
    assert.deepEqual(gone.entries, [{ client: 77, clock: 3, state: null }], 'removed with the next clock when a closed');
  });

  test('a read-only connection syncs but its edits are ignored', async () => {
    const w = open('websocket', srv, 'ro');
    await synced(w);
    w.doc.getText('text').insert(0, 'written');
    const ro = new Y.Doc();
    class ReadOnlySocket extends WebSocket {
      constructor(url, protocols) { super(url, protocols, { headers: { 'x-yjs-read-only': '1' } }); }
    }
    const roProvider = new WebsocketProvider(`${srv.wsUrl}/parties/yjs`, 'ro', ro, { WebSocketPolyfill: ReadOnlySocket, disableBc: true });
    providers.push(roProvider);
    await waitFor(() => ro.getText('text').toString() === 'written', 5000, { what: 'the read-only client syncs' });
    ro.getText('text').insert(0, 'NOT ');
    w.doc.getText('text').insert(7, '!');
    await waitFor(() => ro.getText('text').toString().endsWith('written!'), 5000, { what: 'it still receives' });
    await sleep(300);
    assert.equal(w.doc.getText('text').toString(), 'written!', 'its edit did not reach the writer');
    assert.equal((await serverDoc(srv, 'yjs', 'ro')).doc.getText('text').toString(), 'written!', 'nor the stored document');
  });

  test('a message over 1 MB from YPartyKitProvider (y-pk-batch pieces) arrives whole', async () => {
    const [a, b] = [open('partykit', srv, 'big'), open('websocket', srv, 'big')];
    await Promise.all([synced(a), synced(b)]);
    const big = 'y'.repeat(1_300_000);
    a.doc.getText('text').insert(0, big);
    await waitFor(() => b.doc.getText('text').length === big.length, 15000, { what: 'the big text at b' });
  });
});

describe('yjs party: bad input', () => {
  const srv = sharedServer({ project: 'yjs' });

  test('malformed messages close only their connection (1007 bad data, 1003 unknown type or text), with a log line', async () => {
    const good = open('websocket', srv, 'bad');
    await synced(good);
    good.doc.getText('text').insert(0, 'safe');
    const update = Y.encodeStateAsUpdate(good.doc);
    const cases = [
      ['truncated update', syncMessage(2, update.slice(0, update.length - 2)), 1007],
      ['trailing bytes', Uint8Array.from([...syncMessage(2, update), 9]), 1007],
      ['bad UTF-8 in a string', syncMessage(2, Uint8Array.from([1, 1, 5, 0, 4, 1, 4, 0, 2, 0xc3, 0x28, 0])), 1007],
      ['unknown content type', syncMessage(2, Uint8Array.from([1, 1, 5, 0, 0x1e, 0, 0])), 1007],
      ['bad state vector', syncMessage(0, Uint8Array.from([5, 1])), 1007],
      ['awareness state not JSON', Uint8Array.from([1, 5, 1, 7, 1, 1, 0x7b]), 1007],
      ['unknown message type', Uint8Array.from([9, 0]), 1003],
      ['unknown sync step', Uint8Array.from([0, 7, 0]), 1003],
      ['empty message', new Uint8Array(0), 1007],
      ['text frame', 'hello', 1003],
    ];
    for (const [what, msg, code] of cases) {
      const c = await raw(srv, '/parties/yjs/bad');
      await nextY(c);
      c.send(msg);
      const closed = await c.waitClosed(3000);
      assert.ok(closed, `${what}: closed`);
      assert.equal(closed.code, code, `${what}: close code`);
      assert.ok(closed.reason.length > 0, `${what}: a reason`);
    }
    await waitFor(() => (srv.logs().match(/yjs: connection [^:]+: malformed message/g) || []).length >= cases.length - 1, 3000,
      { what: 'a log line per malformed message' });
    assert.match(srv.logs(), /text frame .* closing with 1003/);
    // the provider that behaved is still connected and synced
    good.doc.getText('text').insert(4, '!');
    const late = open('partykit', srv, 'bad');
    await synced(late);
    await waitFor(() => late.doc.getText('text').toString() === 'safe!', 5000, { what: 'the document intact' });
    assert.equal(good.wsconnected, true);
    assert.doesNotMatch(srv.logs(), /stack traceback|error in on/i);
  });

  test('a fuzzed stream of random valid and invalid messages never crashes the server', async () => {
    const r = rng(7);
    const { updates } = randomHistory(5, { edits: 150 });
    const valid = () => {
      switch (r.int(4)) {
        case 0: return syncMessage(2, r.pick(updates));
        case 1: return syncMessage(1, r.pick(updates));
        case 2: return syncMessage(0, Y.encodeStateVectorFromUpdate(r.pick(updates)));
        default: return awarenessMessage([{ client: 1 + r.int(50), clock: r.int(20), state: r.int(3) ? { x: r.int(9) } : null }]);
      }
    };
    const mutate = (m) => {
      const b = Uint8Array.from(m);
      switch (r.int(5)) {
        case 0: return b.slice(0, r.int(b.length + 1));
        case 1: for (let i = 0; i < 1 + r.int(4); i++) b[r.int(b.length)] ^= 1 << r.int(8); return b;
        case 2: return Uint8Array.from([...b, ...Array.from({ length: 1 + r.int(5) }, () => r.int(256))]);
        case 3: return Uint8Array.from(Array.from({ length: r.int(40) }, () => r.int(256)));
        default: { const i = r.int(b.length); b[i] = 0xff; return b; }
      }
    };
    let sent = 0;
    let closes = 0;
    const deadline = Date.now() + 15000;
    let c = null;
    while (sent < 1500 && Date.now() < deadline) {
      if (!c || c.closeInfo) {
        if (c) closes++;
        c = await raw(srv, '/parties/yjs/fuzz');
      }
      const m = r.int(3) === 0 ? valid() : mutate(valid());
      c.send(r.int(50) === 0 ? Buffer.from(m).toString('latin1') : m);
      sent++;
      if (sent % 20 === 0) await sleep(1); // let closes arrive
    }
    assert.ok(sent >= 500, `sent ${sent}`);
    assert.ok(closes > 10, `bad messages closed connections (${closes})`);
    assert.ok(srv.alive(), 'the server is alive');
    assert.doesNotMatch(srv.logs(), /stack traceback|error in on|AddressSanitizer|runtime error/i);
    // and still serves that document and others
    const p = open('websocket', srv, 'fuzz');
    await synced(p);
    const { doc } = await serverDoc(srv, 'yjs', 'fuzz');
    await converge([p.doc, doc]);
    const q = open('partykit', srv, 'after-fuzz');
    await synced(q);
  });
});

describe('yjs party: storage', () => {
  test('an update is durable before it is relayed, and a restart keeps the document', async () => {
    const persist = mkTmp('luaparty-yjs-');
    let srv = await startServer({ project: 'yjs', persist, startTimeout: 15000 });
    try {
      const a = open('websocket', srv, 'durable');
      const b = await raw(srv, '/parties/yjs/durable');
      await synced(a);
      await nextY(b);
      a.doc.getText('text').insert(0, 'kept across kill -9');
      a.doc.getMap('map').set('k', 'v');
      // once b got both relays, the updates are on disk: kill -9 now
      await b.next(5000);
      await b.next(5000);
      await srv.kill9();
      a.destroy();
      srv = await startServer({ project: 'yjs', persist, startTimeout: 15000 });
      for (const kind of KINDS) {
        const c = open(kind, srv, 'durable');
        await synced(c);
        assert.equal(c.doc.getText('text').toString(), 'kept across kill -9', kind);
        assert.equal(c.doc.getMap('map').get('k'), 'v', kind);
      }
    } finally {
      await srv.stop();
    }
  });

  test('compaction merges the stored log into one update: a fresh client sees what Y.mergeUpdates of the log gives', async () => {
    const srv = await startServer({ project: 'yjs', startTimeout: 15000 });
    try {
      // a raw client sends a known log of 45 updates to the `small` party (compacts every 20)
      const { updates } = randomHistory(11, { clients: 3, edits: 45 });
      const c = await raw(srv, '/parties/small/compact');
      await nextY(c);
      const sendAll = async (list) => { for (const u of list) c.send(syncMessage(2, u)); };
      await sendAll(updates.slice(0, 10));
      await waitFor(async () => (await info(srv, 'small', 'compact')).storedUpdates === 10, 5000, { what: '10 updates stored' });
      const before = open('websocket', srv, 'compact', undefined, { party: 'small' });
      await synced(before);
      assert.deepEqual(docJson(before.doc), docJson(docOf(Y.mergeUpdates(updates.slice(0, 10)))), 'before compaction');
      before.destroy();
      await sendAll(updates.slice(10));
      const stats = await waitFor(async () => {
        const s = await info(srv, 'small', 'compact');
        return s.storedUpdates === updates.length % 20 && s;
      }, 5000, { what: 'the log compacted' });
      assert.ok(stats.storedDocumentBytes > 0, 'the merged document is stored');
      const after = open('partykit', srv, 'compact', undefined, { party: 'small' });
      await synced(after);
      const expected = docJson(docOf(Y.mergeUpdates(updates)));
      assert.deepEqual(docJson(after.doc), expected, 'after compaction');
      // and after a restart, from storage alone
      const persist = srv.persist;
      await closeAll(sockets);
      sockets = [];
      after.destroy();
      await srv.stop();
      const again = await startServer({ project: 'yjs', persist, startTimeout: 15000 });
      try {
        const fresh = open('websocket', again, 'compact', undefined, { party: 'small' });
        await synced(fresh);
        assert.deepEqual(docJson(fresh.doc), expected, 'after a restart');
      } finally {
        await again.stop();
      }
    } finally {
      await srv.stop();
    }
  });

  test('gc on drops deleted content from the stored document, gc off keeps it', async () => {
    const srv = await startServer({ project: 'yjs', startTimeout: 15000 });
    try {
      const sizes = {};
      for (const party of ['yjs', 'nogc']) {
        const p = open('websocket', srv, 'gc', undefined, { party });
        await synced(p);
        const t = p.doc.getText('text');
        for (let i = 0; i < 40; i++) t.insert(t.length, `line ${i} with some words in it\n`);
        await sleep(50);
        t.delete(0, t.length);
        t.insert(0, 'left');
        await waitFor(async () => (await serverDoc(srv, party, 'gc')).doc.getText('text').toString() === 'left', 5000,
          { what: `${party}: the edits stored` });
        p.destroy(); // the last client leaves: the log is compacted
        sizes[party] = await waitFor(async () => {
          const s = await info(srv, party, 'gc');
          return s.storedUpdates === 0 && s.connections === 0 && s.storedDocumentBytes;
        }, 5000, { what: `${party}: compacted on the last close` });
        const fresh = open('partykit', srv, 'gc', undefined, { party });
        await synced(fresh);
        assert.equal(fresh.doc.getText('text').toString(), 'left', party);
      }
      assert.ok(sizes.nogc > 1200, `gc off keeps the deleted text: ${sizes.nogc} bytes`);
      assert.ok(sizes.yjs < 200, `gc on drops it: ${sizes.yjs} bytes`);
    } finally {
      await srv.stop();
    }
  });

  test('onChange is called debounced, with the whole document as one update', async () => {
    const srv = await startServer({ project: 'yjs', startTimeout: 15000 });
    try {
      const p = open('websocket', srv, 'cb', undefined, { party: 'changes' });
      await synced(p);
      for (let i = 0; i < 30; i++) {
        p.doc.getText('text').insert(i, String(i % 10));
        await sleep(10);
      }
      const got = await waitFor(async () => {
        const j = (await httpRequest(`${srv.url}/parties/changes/cb?changes`)).json();
        return j.calls > 0 && docOf(Buffer.from(j.last, 'hex')).getText('text').length === 30 && j;
      }, 8000, { what: 'onChange with the 30 characters' });
      await sleep(800); // nothing more to report
      const j = (await httpRequest(`${srv.url}/parties/changes/cb?changes`)).json();
      assert.ok(j.calls >= 1 && j.calls <= 3, `30 edits in ~0.4 s gave ${j.calls} calls`);
      assert.equal(docOf(Buffer.from(got.last, 'hex')).getText('text').toString(), p.doc.getText('text').toString());
      assert.equal(j.last, Buffer.from((await serverDoc(srv, 'changes', 'cb')).bytes).toString('hex'), 'the merged document');
    } finally {
      await srv.stop();
    }
  });
});

describe('yjs party: many editors', () => {
  const srv = sharedServer({ project: 'yjs' });

  test('100 concurrent editors on one document converge', async () => {
    const N = 100;
    const ps = Array.from({ length: N }, (_, i) => open(i % 2 ? 'partykit' : 'websocket', srv, 'hundred'));
    await Promise.all(ps.map((p) => synced(p, 30000)));
    ps.forEach((p, i) => {
      p.doc.getText('text').insert(0, `<${i}>`);
      p.doc.getMap('map').set(`k${i % 10}`, i);
      p.doc.getArray('array').push([i]);
    });
    const json = await converge(ps.map((p) => p.doc), 30000);
    for (let i = 0; i < N; i++) assert.ok(json.text.map((d) => d.insert).join('').includes(`<${i}>`), `edit ${i} is there`);
    assert.equal(json.array.length, N);
    await waitFor(async () => (await serverDoc(srv, 'yjs', 'hundred')).doc.getArray('array').length === N, 10000,
      { what: 'the stored document has every edit' });
  });
});
