// src/yjs.c against yjs's own update functions (npm yjs), on seeded random
// editing histories of several clients (text with emoji, formatting, maps,
// arrays, nested types, XML, deletions): the party tests/projects/yjs
// codec.lua calls the C functions over HTTP.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedServer } from './lib/fixtures.mjs';
import { Y, randomHistory, docJson, docOf, codec, rng } from './lib/yjs.mjs';

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

const eqBytes = (a, b, what) => assert.equal(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'), what);

describe('yjs codec (src/yjs.c) against npm yjs', () => {
  const srv = sharedServer({ project: 'yjs' });

  test('merge: byte for byte Y.mergeUpdates, for whole logs and for logs with gaps', async () => {
    for (const seed of SEEDS) {
      const { updates } = randomHistory(seed);
      eqBytes(await codec(srv, 'merge', updates), Y.mergeUpdates(updates), `seed ${seed}: whole log`);
      const r = rng(seed * 7);
      const some = updates.filter(() => r.int(3) !== 0); // gaps: later structs without earlier ones
      eqBytes(await codec(srv, 'merge', some), Y.mergeUpdates(some), `seed ${seed}: log with gaps`);
      const shuffled = [...updates].sort(() => r() - 0.5);
      eqBytes(await codec(srv, 'merge', shuffled), Y.mergeUpdates(shuffled), `seed ${seed}: shuffled log`);
      // merging merged halves (what compaction does again and again)
      const half = Math.floor(updates.length / 2);
      const parts = [Y.mergeUpdates(updates.slice(0, half)), Y.mergeUpdates(updates.slice(half))];
      eqBytes(await codec(srv, 'merge', parts), Y.mergeUpdates(parts), `seed ${seed}: merged halves`);
    }
    eqBytes(await codec(srv, 'merge', []), Y.mergeUpdates([]), 'no updates');
  });

  test('merge with gc and coalescing: the same document as Y.mergeUpdates, in fewer bytes', async () => {
    let exactBytes = 0;
    let ourBytes = 0;
    for (const seed of SEEDS) {
      const { updates, docs } = randomHistory(seed, { edits: 120 });
      const exact = Y.mergeUpdates(updates);
      const ours = await codec(srv, 'merge', updates, '?gc&coalesce');
      assert.deepEqual(docJson(docOf(ours)), docJson(docOf(exact)), `seed ${seed}`);
      // merging it again, with more edits on top, still gives the same document
      const more = randomHistory(seed + 100, { clients: 1, edits: 10 }).updates;
      const again = await codec(srv, 'merge', [ours, ...more], '?gc&coalesce');
      assert.deepEqual(docJson(docOf(again)), docJson(docOf(Y.mergeUpdates([...updates, ...more]))), `seed ${seed}, again`);
      // and a peer that holds part of it ends where it would with Yjs's merge
      const withOurs = docOf(Y.encodeStateAsUpdate(docs[0]));
      Y.applyUpdate(withOurs, ours);
      const withExact = docOf(Y.encodeStateAsUpdate(docs[0]));
      Y.applyUpdate(withExact, exact);
      assert.deepEqual(docJson(withOurs), docJson(withExact), `seed ${seed}, peer with a part`);
      exactBytes += exact.length;
      ourBytes += ours.length;
    }
    assert.ok(ourBytes < exactBytes, `gc + coalescing: ${ourBytes} bytes against ${exactBytes}`);
  });

  test('coalescing: typed text becomes a few items, and a late insert between them still lands right', async () => {
    const a = new Y.Doc();
    a.clientID = 5;
    const updates = [];
    a.on('update', (u) => updates.push(u));
    const text = 'typed one character at a time';
    for (let i = 0; i < text.length; i++) a.getText('text').insert(i, text[i]);
    const exact = Y.mergeUpdates(updates);
    const ours = await codec(srv, 'merge', updates, '?gc&coalesce');
    assert.ok(ours.length * 3 < exact.length, `coalesced ${ours.length} bytes, Y.mergeUpdates ${exact.length}`);
    // b saw only the first 6 characters and inserts after the 6th, concurrently
    for (const client of [1, 9]) { // lower and higher client id than a's
      const b = new Y.Doc();
      b.clientID = client;
      Y.applyUpdate(b, Y.mergeUpdates(updates.slice(0, 6)));
      const before = Y.encodeStateVector(b);
      b.getText('text').insert(6, 'XY');
      const late = Y.encodeStateAsUpdate(b, before);
      const want = docOf(Y.mergeUpdates([...updates, late])).getText('text').toString();
      assert.equal(docOf(Y.mergeUpdates([ours, late])).getText('text').toString(), want, `client ${client}`);
      const again = await codec(srv, 'merge', [ours, late], '?gc&coalesce');
      assert.equal(docOf(again).getText('text').toString(), want, `client ${client}, merged again`);
      // once b's insert is known, the neighbours around it are not joined
      const both = await codec(srv, 'merge', [...updates, late], '?gc&coalesce');
      assert.equal(docOf(both).getText('text').toString(), want, `client ${client}, known before joining`);
    }
  });

  test('diff: byte for byte Y.diffUpdate against each client\'s state vector', async () => {
    for (const seed of SEEDS) {
      const { updates, docs } = randomHistory(seed);
      const merged = Y.mergeUpdates(updates);
      const r = rng(seed);
      const gappy = Y.mergeUpdates(updates.filter(() => r.int(3) !== 0));
      for (const d of [...docs, new Y.Doc()]) {
        const sv = Y.encodeStateVector(d);
        eqBytes(await codec(srv, 'diff', [merged, sv]), Y.diffUpdate(merged, sv), `seed ${seed}`);
        eqBytes(await codec(srv, 'diff', [gappy, sv]), Y.diffUpdate(gappy, sv), `seed ${seed}, with gaps`);
      }
    }
  });

  test('state vector: byte for byte Y.encodeStateVectorFromUpdate', async () => {
    for (const seed of SEEDS) {
      const { updates } = randomHistory(seed);
      const r = rng(seed + 1);
      for (const u of [Y.mergeUpdates(updates), Y.mergeUpdates(updates.filter(() => r.int(2))), updates[0]]) {
        eqBytes(await codec(srv, 'sv', [u]), Y.encodeStateVectorFromUpdate(u), `seed ${seed}`);
      }
    }
  });

  test('news: only what the document lacks, and nothing when it has it all', async () => {
    for (const seed of SEEDS.slice(0, 6)) {
      const { updates, docs } = randomHistory(seed);
      const half = Y.mergeUpdates(updates.slice(0, Math.floor(updates.length / 2)));
      const full = Y.encodeStateAsUpdate(docs[0]);
      const news = await codec(srv, 'news', [full, half]);
      const a = docOf(half);
      Y.applyUpdate(a, full);
      const b = docOf(half);
      Y.applyUpdate(b, news);
      assert.deepEqual(docJson(b), docJson(a), `seed ${seed}`);
      assert.ok(news.length <= full.length, `seed ${seed}: news ${news.length} of ${full.length} bytes`);
      const whole = Y.mergeUpdates(updates);
      const none = await codec(srv, 'news', [whole, whole]);
      assert.equal(none.length, 0, `seed ${seed}: nothing new in a document it came from`);
    }
  });

  test('malformed updates are refused with a reason', async () => {
    const good = Y.encodeStateAsUpdate(randomHistory(1).docs[0]);
    const bad = [
      good.slice(0, good.length - 3),
      Uint8Array.from([...good, 0]),
      Uint8Array.from([1, 1, 5, 0, 0x1f]), // content type 31
      Uint8Array.from([1, 1, 5, 0, 4, 1, 4, 0, 2, 0xc3, 0x28]), // a string that is not UTF-8
      Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
    ];
    for (const u of bad) {
      const res = await fetch(`${srv.url}/parties/codec/x/merge`, { method: 'POST', body: Buffer.concat([Buffer.from([0, 0, 0, u.length]), Buffer.from(u)]) });
      assert.equal(res.status, 422, `refused: ${Buffer.from(u).toString('hex').slice(0, 40)}`);
      assert.match(await res.text(), /\w/);
    }
  });
});
