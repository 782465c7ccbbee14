// Helpers for the Yjs party tests (yjs*.test.mjs): seeded random editing of
// real Y.Docs (npm yjs), providers (npm y-websocket, y-partykit) against a
// luaparty server, and raw y-protocols messages (lib0) for the wire tests.
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import * as decoding from 'lib0/decoding';
import { WebsocketProvider } from 'y-websocket';
import YPartyKitProvider from 'y-partykit/provider';
import WebSocket from 'ws';
import { waitFor } from './server.mjs';

export { Y, encoding, decoding };

/** A seeded PRNG (mulberry32): the same seed gives the same edits. */
export function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  next.int = (n) => Math.floor(next() * n);
  next.pick = (arr) => arr[next.int(arr.length)];
  return next;
}

const WORDS = ['a', 'bc', 'def', ' ', 'héllo', 'ünï', '😀', 'x😀y', '\n', '中文', 'z'];

/**
 * Position i of string s, moved back off the middle of a surrogate pair.
 * Yjs replaces a pair it splits with two U+FFFD, and only in the docs that
 * split that item, so peers can end with different text (yjs/yjs#248):
 * two docs exchanging updates directly, without any server, diverge that
 * way in about 2% of runs of these edits. Editors edit whole characters.
 */
function whole(s, i) {
  const c = s.charCodeAt(i - 1);
  return c >= 0xD800 && c <= 0xDBFF ? i - 1 : i;
}

/** [from, to) of s around r-chosen start and length, on whole characters; null if empty. */
function span(s, start, len) {
  const from = whole(s, start);
  const to = whole(s, Math.min(start + len, s.length));
  return to > from ? [from, to] : null;
}

/**
 * One random edit on doc: text inserts/deletes (some with emoji, so UTF-16
 * surrogate pairs), formatting, map sets/deletes, array inserts/deletes,
 * nested maps and arrays, XML.
 */
export function randomEdit(doc, r) {
  const t = doc.getText('text');
  const m = doc.getMap('map');
  const a = doc.getArray('array');
  switch (r.int(10)) {
    case 0: case 1: case 2: {
      t.insert(whole(t.toString(), r.int(t.length + 1)), r.pick(WORDS));
      break;
    }
    case 3: {
      if (t.length > 0) {
        const at = r.int(t.length);
        const sp = span(t.toString(), at, 1 + r.int(4)); // span stops at the end
        if (sp) t.delete(sp[0], sp[1] - sp[0]);
      }
      break;
    }
    case 4: {
      if (t.length > 1) {
        const sp = span(t.toString(), r.int(t.length - 1), 1 + r.int(2));
        const bold = r.int(2) === 1;
        if (sp) t.format(sp[0], sp[1] - sp[0], { bold });
      } else {
        t.insert(0, 'q');
      }
      break;
    }
    case 5: {
      const k = `k${r.int(6)}`;
      const v = r.int(4);
      if (v === 0) m.delete(k);
      else if (v === 1) m.set(k, { n: r.int(100), s: r.pick(WORDS), arr: [1, null, true, 2.5] });
      else if (v === 2) { const sub = new Y.Map(); m.set(k, sub); sub.set('x', r.int(10)); }
      else m.set(k, r.pick(WORDS));
      break;
    }
    case 6: {
      a.insert(r.int(a.length + 1), [r.int(1000), r.pick(WORDS), new Uint8Array([1, 2, r.int(255)])]);
      break;
    }
    case 7: {
      if (a.length > 0) {
        const at = r.int(a.length);
        a.delete(at, Math.min(1 + r.int(3), a.length - at));
      }
      break;
    }
    case 8: {
      const sub = new Y.Array();
      a.insert(r.int(a.length + 1), [sub]);
      sub.insert(0, [r.pick(WORDS), -r.int(1e6), 1.5e300]);
      if (r.int(2)) a.delete(a.length - 1, 1);
      break;
    }
    default: {
      const x = doc.getXmlFragment('xml');
      const el = new Y.XmlElement('p');
      el.setAttribute('class', r.pick(WORDS));
      el.insert(0, [new Y.XmlText(r.pick(WORDS))]);
      x.insert(r.int(x.length + 1), [el]);
      if (x.length > 2 && r.int(2)) x.delete(0, 1);
    }
  }
}

/**
 * Several docs editing concurrently with occasional syncs; returns every
 * update any of them emitted, in emission order, and the docs.
 */
export function randomHistory(seed, { clients = 3, edits = 60 } = {}) {
  const r = rng(seed);
  const docs = Array.from({ length: clients }, () => {
    const d = new Y.Doc();
    d.clientID = 1 + r.int(0xfffffffe); // seeded too: conflicts resolve by client id
    return d;
  });
  const updates = [];
  docs.forEach((d) => d.on('update', (u, origin) => { if (origin !== 'sync') updates.push(u); }));
  for (let i = 0; i < edits; i++) {
    randomEdit(docs[r.int(clients)], r);
    if (r.int(5) === 0) { // two docs exchange their states
      const x = docs[r.int(clients)];
      const y = docs[r.int(clients)];
      if (x !== y) {
        Y.applyUpdate(y, Y.encodeStateAsUpdate(x, Y.encodeStateVector(y)), 'sync');
        Y.applyUpdate(x, Y.encodeStateAsUpdate(y, Y.encodeStateVector(x)), 'sync');
      }
    }
  }
  return { updates, docs };
}

/** v with every object's keys sorted (a Y.Map's toJSON follows arrival order). */
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object' && !(v instanceof Uint8Array)) {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, canon(v[k])]));
  }
  return v;
}

/** The JSON of a doc's shared types (the ones randomEdit uses), keys sorted. */
export function docJson(doc) {
  return canon({
    text: doc.getText('text').toDelta(),
    map: doc.getMap('map').toJSON(),
    array: doc.getArray('array').toJSON(),
    xml: doc.getXmlFragment('xml').toString(),
  });
}

/** A fresh doc from one update. */
export function docOf(update) {
  const d = new Y.Doc();
  Y.applyUpdate(d, update);
  return d;
}

/** Body for the codec party: each part as a 4-byte big-endian length and its bytes. */
export function frame(parts) {
  const out = [];
  for (const p of parts) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(p.length);
    out.push(len, Buffer.from(p));
  }
  return Buffer.concat(out);
}

/** Calls an op of the codec party (tests/projects/yjs/parties/codec.lua). */
export async function codec(srv, op, parts, query = '') {
  const res = await fetch(`${srv.url}/parties/codec/x/${op}${query}`, { method: 'POST', body: frame(parts) });
  const body = new Uint8Array(await res.arrayBuffer());
  if (res.status !== 200) throw new Error(`codec ${op}: ${res.status} ${Buffer.from(body).toString()}`);
  return body;
}

/** A provider of the given kind ('websocket' or 'partykit') on doc `room` of `party`. */
export function provider(kind, srv, room, doc = new Y.Doc(), { party = 'yjs', params } = {}) {
  const opts = { WebSocketPolyfill: WebSocket, disableBc: true, maxBackoffTime: 300 };
  const p = kind === 'partykit'
    ? new YPartyKitProvider(`127.0.0.1:${srv.port}`, room, doc, { ...opts, party, params })
    : new WebsocketProvider(`${srv.wsUrl}/parties/${party}`, room, doc, { ...opts, params });
  p.doc = doc;
  return p;
}

/** Waits until the provider synced (its sync step 2 from the server arrived). */
export function synced(p, timeout = 10000) {
  return waitFor(() => p.synced, timeout, { what: 'provider synced' });
}

/** Waits until every doc has the same JSON; returns it. */
export async function converge(docs, timeout = 10000) {
  let last;
  await waitFor(() => {
    const js = docs.map((d) => JSON.stringify(docJson(d)));
    last = js;
    return js.every((j) => j === js[0]);
  }, timeout, { what: `${docs.length} docs to converge (${last ? last.map((s) => s.length).join(',') : ''})` });
  return docJson(docs[0]);
}

/** A sync message: [0, step, varUint8Array(payload)]. */
export function syncMessage(step, payload) {
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, 0);
  encoding.writeVarUint(e, step);
  encoding.writeVarUint8Array(e, payload);
  return encoding.toUint8Array(e);
}

/** An awareness message for entries [{client, clock, state}] (state: a value, JSON-encoded here). */
export function awarenessMessage(entries) {
  const inner = encoding.createEncoder();
  encoding.writeVarUint(inner, entries.length);
  for (const { client, clock, state } of entries) {
    encoding.writeVarUint(inner, client);
    encoding.writeVarUint(inner, clock);
    encoding.writeVarString(inner, JSON.stringify(state));
  }
  const e = encoding.createEncoder();
  encoding.writeVarUint(e, 1);
  encoding.writeVarUint8Array(e, encoding.toUint8Array(inner));
  return encoding.toUint8Array(e);
}

/** Reads a server message: {type: 'sync', step, payload} | {type: 'awareness', entries} | {type}. */
export function readMessage(bytes) {
  const d = decoding.createDecoder(new Uint8Array(bytes));
  const type = decoding.readVarUint(d);
  if (type === 0) {
    const step = decoding.readVarUint(d);
    return { type: 'sync', step, payload: decoding.readVarUint8Array(d) };
  }
  if (type === 1) {
    const a = decoding.createDecoder(decoding.readVarUint8Array(d));
    const n = decoding.readVarUint(a);
    const entries = [];
    for (let i = 0; i < n; i++) {
      entries.push({ client: decoding.readVarUint(a), clock: decoding.readVarUint(a), state: JSON.parse(decoding.readVarString(a)) });
    }
    return { type: 'awareness', entries };
  }
  return { type };
}
