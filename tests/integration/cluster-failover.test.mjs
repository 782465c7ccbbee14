// Cluster mode when things go wrong: an owner killed with kill -9 (its rooms
// move after the lease TTL), an owner paused with SIGSTOP past its lease (it
// must send nothing stale when it wakes), a drained node (SIGTERM: 1012,
// exit 0, rooms free at once) and bad start-up input (exit 2, one line).
// Real redis-server and luaparty nodes on 127.0.0.1, fresh for each test.
import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import {
  startRedis, startNode, startCluster, stopAll, freshRequest, wsOpen, closeClients,
  serveExpectExit, clusterArgs, clusterStatus, freePort, sleep, waitFor,
} from './lib/cluster.mjs';

afterEach(stopAll);

const TTL = 2000;
let seq = 0;
const roomName = (what) => `${what}-${process.pid}-${++seq}`;

// Requests `url` in a loop (one fresh connection each, 1.5 s bound, 25 ms
// apart) until stop() is called; every answer is kept with its start time.
function requestLoop(url) {
  const log = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const t = Date.now();
      try {
        const r = await freshRequest(url, { timeout: 1500 });
        log.push({ t, end: Date.now(), status: r.status, node: r.node, retryAfter: r.headers['retry-after'], body: r.body });
      } catch (e) {
        log.push({ t, end: Date.now(), error: e.message });
      }
      await sleep(25);
    }
  })();
  return { log, async stop() { running = false; await done; } };
}

const brief = (log) => JSON.stringify(log.map((e) => (e.error ? `${e.t % 100000}:ERR ${e.error}` : `${e.t % 100000}:${e.status}/${e.node ?? '-'}`)));

test('T4: owner kill -9 while a client loop requests the room via another node: served again within TTL + 1 s, by another node', async () => {
  const { nodes: [a, b, c] } = await startCluster({ n: 3, ttl: TTL });
  const room = roomName('t4');
  const url = (n) => `${n.url}/parties/main/${room}`;
  assert.equal((await freshRequest(url(a), { method: 'POST' })).node, 'a');
  const loop = requestLoop(url(b));
  await sleep(300);
  const tKill = Date.now();
  await a.kill9();
  let recovered;
  try {
    recovered = await waitFor(() => loop.log.find((e) => e.t >= tKill && e.status === 200), TTL + 3000,
      { interval: 20, what: 'a 200 for the room via b after the kill' });
    await sleep(300); // a few answers after the recovery
  } finally {
    await loop.stop();
  }
  const before = loop.log.filter((e) => e.end < tKill);
  assert.ok(before.length > 0 && before.every((e) => e.status === 200 && e.node === 'a'),
    `before the kill every answer came from a: ${brief(before)}`);
  const took = recovered.end - tKill;
  assert.ok(took <= TTL + 1000, `the room was served again ${took} ms after kill -9 (TTL ${TTL} + 1 s): ${brief(loop.log)}`);
  assert.ok(['b', 'c'].includes(recovered.node), `served by another node: ${recovered.node}`);
  const gap = loop.log.filter((e) => e.t >= tKill && e.t < recovered.t);
  for (const e of gap) {
    assert.ok(!e.error, `via b the client always gets an answer, never a dropped connection: ${brief(gap)}`);
    assert.ok(e.status === 503 || e.status === 502 || (e.status === 200 && e.node === 'a' && e.t < tKill + 50),
      `between the kill and the recovery only 502/503: ${brief(gap)}`);
    if (e.status === 503) assert.ok(e.retryAfter, `a 503 carries Retry-After: ${JSON.stringify(e)}`);
  }
  const after = loop.log.filter((e) => e.t >= recovered.t);
  assert.ok(after.every((e) => e.status === 200 && e.node === recovered.node),
    `after the recovery one new owner answers every time: ${brief(after)}`);
  const v = JSON.parse(recovered.body);
  assert.equal(v.starts, 1, 'a new instance started on the new owner');
  assert.equal(v.hits, 0, 'in-memory state of the dead instance is gone (a fresh onStart)');
  const viaC = await freshRequest(url(c));
  assert.equal(viaC.status, 200);
  assert.equal(viaC.node, recovered.node, 'c agrees on the new owner');
});

test('T4: owner kill -9 with WebSockets proxied through another node: they close promptly, and reconnect to a new owner within TTL + 1 s', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2, ttl: TTL });
  const room = roomName('t4ws');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`)).node, 'a');
  const clients = await Promise.all(Array.from({ length: 5 }, () => wsOpen(`${b.wsUrl}/parties/main/${room}`)));
  try {
    assert.ok(clients.every((c) => c.node === 'a'));
    const tKill = Date.now();
    await a.kill9();
    const closes = await Promise.all(clients.map((c) => c.waitClosed(3000)));
    assert.ok(closes.every(Boolean), `every proxied socket closed within 3 s of the owner's death: ${JSON.stringify(closes)}`);
    assert.ok(closes.every((ci) => ci.code !== 1000), `not a clean 1000 close: ${JSON.stringify(closes)}`);
    // PartySocket-style reconnect loop via b.
    let again;
    await waitFor(async () => {
      try {
        again = await wsOpen(`${b.wsUrl}/parties/main/${room}`, { timeout: 1500 });
        return true;
      } catch (e) {
        if (e.status && e.status !== 502 && e.status !== 503) throw new Error(`refused with ${e.status}, not 502/503`);
        return false;
      }
    }, TTL + 3000, { interval: 50, what: 'a reconnect via b' });
    const took = Date.now() - tKill;
    clients.push(again);
    assert.ok(took <= TTL + 1000, `reconnected ${took} ms after the kill`);
    assert.equal(again.node, 'b');
    again.send('echo:back');
    assert.equal(await again.nextText(), 'echo:back');
  } finally {
    await closeClients(clients);
  }
});

// GETs url(node) every 50 ms (1 s bound each) until pred(answer); keeps what it saw.
async function pollUntil(url, pred, timeout, tRef) {
  const seen = [];
  const r = await waitFor(async () => {
    const t = Date.now() - tRef;
    try {
      const x = await freshRequest(url, { timeout: 1000 });
      seen.push(`+${t}:${x.status}/${x.node ?? '-'}`);
      return pred(x) ? x : false;
    } catch (e) {
      seen.push(`+${t}:ERR ${e.message.replace(/^.*: /, '')}`);
      return false;
    }
  }, timeout, { interval: 50, what: `an answer from ${url}` }).catch((e) => {
    throw new Error(`${e.message}; answers: ${seen.join(' ')}`);
  });
  return { r, seen };
}

test('T9: SIGSTOP the owner past its lease, then SIGCONT: its clients (direct and proxied) get 1012 and nothing sent after the deadline; no stale instance answers', async () => {
  const { redis, nodes: [a, b] } = await startCluster({ n: 2, ttl: TTL });
  const room = roomName('t9');
  const url = (n) => `${n.url}/parties/main/${room}`;
  const first = await freshRequest(url(a), { method: 'POST' });
  assert.equal(first.node, 'a');
  assert.equal(first.json().hits, 1);
  const direct = await wsOpen(`${a.wsUrl}/parties/main/${room}`);
  const proxied = await wsOpen(`${b.wsUrl}/parties/main/${room}`);
  const clients = [direct, proxied];
  try {
    assert.equal(direct.node, 'a');
    assert.equal(proxied.node, 'a');
    direct.send('echo:before');
    assert.equal(await direct.nextText(), 'echo:before');
    proxied.send('echo:before');
    assert.equal(await proxied.nextText(), 'echo:before');
    // An alarm due while a is stopped: on waking, a would broadcast "alarm-fired".
    direct.send(`alarm:${Date.now() + 1200}`);
    assert.equal(await direct.nextText(), 'alarm-set');

    const mark = { direct: direct.all.length, proxied: proxied.all.length };
    await a.pause();
    const tStop = Date.now();
    // Sent while a sleeps: they wait in a's socket buffers. Echoing them
    // after waking would be output after the lease deadline.
    direct.send('echo:late');
    proxied.send('echo:late');
    await sleep(TTL + 1000);
    const tWake = Date.now();
    a.resume();

    const [cd, cp] = await Promise.all([direct.waitClosed(4000), proxied.waitClosed(4000)]);
    for (const [name, cl] of [['direct', direct], ['proxied', proxied]]) {
      const stale = cl.all.slice(mark[name]);
      assert.deepEqual(stale.map((m) => m.text), [], `${name}: no message arrived after a stopped (woke at +${tWake - tStop} ms)`);
    }
    assert.ok(cd, 'the direct client of a was closed after a woke');
    assert.equal(cd.code, 1012, `the direct client got close 1012: ${JSON.stringify(cd)}`);
    assert.ok(cp, 'the client proxied to a via b was closed');
    assert.equal(cp.code, 1012, `the proxied client got close 1012: ${JSON.stringify(cp)}`);

    // Room HTTP on a after waking: 503 (Retry-After) until it re-registered;
    // then a 200 from a fresh instance (hits 0), never the old one.
    const seen = [];
    await waitFor(async () => {
      try {
        const r = await freshRequest(url(a), { timeout: 1500 });
        const v = r.status === 200 ? r.json() : null;
        seen.push(`${r.status}/${r.node ?? '-'}${v ? `/hits=${v.hits}` : ''}${r.status === 503 ? `/ra=${r.headers['retry-after']}` : ''}`);
        assert.ok(r.status === 503 || (r.status === 200 && v.hits === 0), `room HTTP on a after waking: ${seen}`);
        if (r.status === 503) assert.ok(r.headers['retry-after'], `503 with Retry-After: ${seen}`);
        return r.status === 200;
      } catch (e) {
        if (e.code === 'ERR_ASSERTION') throw e;
        seen.push(`ERR ${e.message}`);
        return false;
      }
    }, 6000, { interval: 50, what: 'the room to answer on a again' });
    assert.ok(!seen.some((x) => x.startsWith('ERR')), `a answered every request: ${seen}`);
    // a re-registered with a new epoch.
    const st = await clusterStatus(redis);
    const la = st.lines.find((l) => l.startsWith('a '));
    const m = /epoch=?(\d+)/.exec(la ?? '');
    assert.ok(m && Number(m[1]) > a.epoch, `a rejoined with a newer epoch than ${a.epoch}: ${st.stdout}${st.stderr}`);
    assert.match(la, /alive/);
    const viaB = await freshRequest(url(b));
    assert.equal(viaB.status, 200);
    assert.equal(viaB.json().hits, 0, 'b reaches the fresh instance too');
  } finally {
    await closeClients(clients);
  }
});

test('T8: SIGSTOP the owner past its lease: other nodes (one that proxied to it, one that never saw the room) claim the room meanwhile; on SIGCONT it defers to the new owner', async () => {
  const { nodes: [a, b, c] } = await startCluster({ n: 3, ttl: TTL });
  const room = roomName('t8');
  const url = (n) => `${n.url}/parties/main/${room}`;
  assert.equal((await freshRequest(url(a))).node, 'a');
  assert.equal((await freshRequest(url(b))).node, 'a', 'b proxied to a (and may cache that)');
  const direct = await wsOpen(`${a.wsUrl}/parties/main/${room}`);
  const clients = [direct];
  try {
    const mark = direct.all.length;
    await a.pause();
    const tStop = Date.now();
    direct.send('echo:late');
    // c never saw the room: it claims it once a's lease expired.
    const { r: viaC, seen: seenC } = await pollUntil(url(c), (x) => x.status === 200 && x.node !== 'a', TTL + 3000, tStop);
    const took = Date.now() - tStop;
    assert.ok(took <= TTL + 1000 + 1000, `served via c ${took} ms after a stopped: ${seenC.join(' ')}`);
    const owner = viaC.node;
    assert.ok(['b', 'c'].includes(owner), owner);
    assert.equal(viaC.json().starts, 1);
    // b, which proxied to a before, must find the new owner too.
    const { r: viaB, seen: seenB } = await pollUntil(url(b), (x) => x.status === 200, 3000, tStop);
    assert.equal(viaB.node, owner, `b agrees on the new owner: ${seenB.join(' ')}`);
    const onNew = await wsOpen(`${b.wsUrl}/parties/main/${room}`);
    clients.push(onNew);
    assert.equal(onNew.node, owner, 'new sockets go to the new owner');

    await sleep(Math.max(0, tStop + TTL + 1000 - Date.now()));
    a.resume();
    const cd = await direct.waitClosed(4000);
    assert.deepEqual(direct.all.slice(mark).map((m) => m.text), [], 'nothing stale reached a\'s client');
    assert.equal(cd?.code, 1012, `a's client got 1012: ${JSON.stringify(cd)}`);
    // a answers the room with 503 until it re-registered, then proxies to the new owner.
    const seen = [];
    await waitFor(async () => {
      const x = await freshRequest(url(a), { timeout: 1500 });
      seen.push(`${x.status}/${x.node ?? '-'}`);
      assert.ok(x.status === 503 || (x.status === 200 && x.node === owner), `room HTTP on a after waking: ${seen}`);
      return x.status === 200;
    }, 6000, { interval: 50, what: 'a to proxy the room to its new owner' });
    onNew.send('who');
    assert.equal(await onNew.nextText(), 'conns:1', 'the new instance holds only its own socket');
  } finally {
    await closeClients(clients);
  }
});

test('T8: a request forwarded to an owner that stopped (SIGSTOP) does not hang: answered within TTL + 1 s, by 502/503 or the new owner', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2, ttl: TTL });
  const room = roomName('stall');
  const url = (n) => `${n.url}/parties/main/${room}`;
  assert.equal((await freshRequest(url(a))).node, 'a');
  assert.equal((await freshRequest(url(b))).node, 'a');
  await a.pause();
  const tStop = Date.now();
  const answers = await Promise.all([0, 300, 800].map(async (delay) => {
    await sleep(delay);
    const t = Date.now();
    try {
      const r = await freshRequest(url(b), { timeout: TTL + 4000 });
      return { sent: t - tStop, ms: Date.now() - t, at: Date.now() - tStop, status: r.status, node: r.node, body: r.body.slice(0, 80) };
    } catch (e) {
      return { sent: t - tStop, error: e.message };
    }
  }));
  a.resume();
  for (const x of answers) {
    assert.ok(!x.error, `answered at all: ${JSON.stringify(answers)}`);
    assert.ok(x.at <= TTL + 1000 + 200, `answered by +${TTL + 1200} ms after the owner stopped: ${JSON.stringify(answers)}`);
    assert.ok(x.status === 502 || x.status === 503 || (x.status === 200 && x.node === 'b'),
      `502/503 or the new owner: ${JSON.stringify(answers)}`);
  }
});

test('T9: a request already sent to an owner that then stopped runs at most once: the paused owner does not run it when it wakes', async () => {
  const { nodes: [a, b, c] } = await startCluster({ n: 3, ttl: TTL });
  const room = roomName('once');
  const target = roomName('once-t');
  assert.equal((await freshRequest(`${c.url}/parties/other/${target}`)).node, 'c', 'c owns other/target and stays up');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`)).node, 'a');
  await a.pause();
  // Through b to a (stopped): the handler would POST to other/target on c.
  const r = await freshRequest(`${b.url}/parties/main/${room}/call?target=${target}`, { method: 'POST', timeout: TTL + 4000 })
    .catch((e) => ({ error: e.message }));
  const before = (await freshRequest(`${c.url}/parties/other/${target}`)).json().hits;
  a.resume();
  assert.ok(!r.error, `answered: ${r.error}`);
  assert.ok([200, 502, 503].includes(r.status), `${r.status} ${r.body}`);
  assert.equal(before, r.status === 200 ? 1 : 0, `the call ran once if it was answered 200, else not at all: ${r.status} ${r.body}`);
  await waitFor(() => /rejoined|registered again/.test(a.logs()), 5000, { what: 'a to re-register after waking' })
    .catch(() => {}); // only to give a time to read its buffered request
  await sleep(500);
  const after = (await freshRequest(`${c.url}/parties/other/${target}`)).json().hits;
  assert.equal(after, before, `a did not run the request it had buffered while stopped (other/target hits ${before} -> ${after})`);
});

test('drain: SIGTERM closes WebSockets (direct and proxied) with 1012, exits 0, and another node serves the room at once', async () => {
  const { nodes: [a, b] } = await startCluster({ n: 2, ttl: 5000 }); // a long lease: "at once" cannot be expiry
  const room = roomName('drain');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`)).node, 'a');
  const direct = await wsOpen(`${a.wsUrl}/parties/main/${room}`);
  const proxied = await wsOpen(`${b.wsUrl}/parties/main/${room}`);
  try {
    assert.equal(proxied.node, 'a');
    const exit = a.stop(6000);
    const [cd, cp] = await Promise.all([direct.waitClosed(4000), proxied.waitClosed(4000)]);
    assert.equal(cd?.code, 1012, `direct client: ${JSON.stringify(cd)}`);
    assert.equal(cp?.code, 1012, `proxied client: ${JSON.stringify(cp)}`);
    const e = await exit;
    assert.equal(e.killed, false, `a exited on its own: ${JSON.stringify(e)}\n${a.logs()}`);
    assert.equal(e.code, 0, `exit code 0: ${JSON.stringify(e)}`);
    const tExit = Date.now();
    const seen = [];
    const r = await waitFor(async () => {
      const x = await freshRequest(`${b.url}/parties/main/${room}`, { timeout: 1000 });
      seen.push(`${x.status}/${x.node ?? '-'}`);
      return x.status === 200 ? x : false;
    }, 3000, { interval: 20, what: 'b to serve the drained room' });
    const took = Date.now() - tExit;
    assert.ok(took < 1000, `b served the room ${took} ms after a exited (< 1 s; lease 5 s): ${seen}`);
    assert.equal(r.node, 'b');
    assert.equal(r.json().starts, 1);
    const again = await wsOpen(`${b.wsUrl}/parties/main/${room}`);
    assert.equal(again.node, 'b');
    await closeClients([again]);
  } finally {
    await closeClients([direct, proxied]);
  }
});

// ---- start-up errors: exit code 2, one line on stderr --------------------------------

function oneLine(r) {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `exactly one line on stderr:\n${r.stderr}`);
  return lines[0];
}

test('start-up: an unreachable Redis exits 2 promptly with one line naming it', async () => {
  const port = await freePort(); // nothing listens there
  for (const url of ['redis://127.0.0.1:1', `redis://127.0.0.1:${port}`]) {
    const r = await serveExpectExit({ args: clusterArgs(url, { id: 'a' }) });
    assert.equal(r.timedOut, false, `it exits instead of waiting: ${r.stderr}`);
    assert.equal(r.code, 2, `exit code 2 for ${url}: ${r.code} ${r.stderr}`);
    assert.ok(r.ms < 5000, `within 5 s (${r.ms} ms)`);
    const line = oneLine(r);
    assert.ok(line.includes(url.replace('redis://', '')), `the message names ${url}: ${line}`);
    assert.doesNotMatch(r.stdout + r.stderr, /listening on/);
  }
});

test('start-up: a malformed cluster URL exits 2 with one line', async () => {
  for (const url of ['http://x', 'redis://', 'redis://127.0.0.1:99999', 'nonsense']) {
    const r = await serveExpectExit({ args: clusterArgs(url, { id: 'a' }) });
    assert.equal(r.timedOut, false);
    assert.equal(r.code, 2, `exit code 2 for ${url}: ${r.code} ${r.stderr}`);
    const line = oneLine(r);
    assert.match(line, /cluster|redis|url/i, `${url}: ${line}`);
    assert.doesNotMatch(r.stdout + r.stderr, /listening on/);
  }
});

test('start-up: a node id already live exits 2 ("already live"), leaves the live node alone; after its lease expires the id is free', async () => {
  const redis = await startRedis();
  const a = await startNode(redis, { id: 'a', ttl: TTL });
  const room = roomName('dup');
  assert.equal((await freshRequest(`${a.url}/parties/main/${room}`, { method: 'POST' })).node, 'a');
  const dup = await serveExpectExit({ args: clusterArgs(redis, { id: 'a', ttl: TTL }) });
  assert.equal(dup.code, 2, `exit code 2: ${dup.code} ${dup.stderr}`);
  const line = oneLine(dup);
  assert.match(line, /already live/, line);
  assert.doesNotMatch(dup.stdout + dup.stderr, /listening on/);
  // The live node keeps its lease, epoch and room.
  await sleep(TTL / 2);
  const st = await clusterStatus(redis);
  assert.equal(st.lines.length, 1, st.stdout);
  assert.match(st.lines[0], new RegExp(`^a .*epoch=?${a.epoch}\\b.*alive`), st.stdout);
  assert.ok(st.lines[0].includes(`127.0.0.1:${a.internalPort}`), `the address is still a's: ${st.lines[0]}`);
  const r = await freshRequest(`${a.url}/parties/main/${room}`);
  assert.equal(r.status, 200);
  assert.equal(r.json().hits, 1);
  // kill -9: the id stays taken until the lease expires, then a new process may use it.
  await a.kill9();
  const early = await serveExpectExit({ args: clusterArgs(redis, { id: 'a', ttl: TTL }) });
  assert.equal(early.code, 2, `still live right after kill -9: ${early.stderr}`);
  assert.match(early.stderr, /already live/);
  await sleep(TTL + 300);
  const a2 = await startNode(redis, { id: 'a', ttl: TTL });
  assert.ok(a2.epoch > a.epoch, `a new epoch: ${a2.epoch} > ${a.epoch}`);
  const r2 = await freshRequest(`${a2.url}/parties/main/${room}`);
  assert.equal(r2.status, 200);
  assert.equal(r2.json().hits, 0, 'the room starts afresh');
});

test('start-up: another node id on the same Redis joins fine while one runs (the check is per id)', async () => {
  const redis = await startRedis();
  await startNode(redis, { id: 'a', ttl: TTL });
  const b = await startNode(redis, { id: 'b', ttl: TTL });
  assert.ok(b.port > 0);
  const st = await clusterStatus(redis);
  assert.deepEqual(st.lines.map((l) => l.split(' ')[0]), ['a', 'b'], st.stdout);
});
