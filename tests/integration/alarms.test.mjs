// Alarms: storage:setAlarm/getAlarm/deleteAlarm and the party's onAlarm —
// timing, clearing, retry with backoff, room.id/context.parties inside onAlarm,
// unloaded rooms and server restarts (tests/projects/storage/parties/alarm.lua:
// onAlarm records its run in the storage key "fired").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkTmp, sleep, waitFor } from './lib/server.mjs';
import { storageProject } from './lib/storage-project.mjs';

const { req, start, cmd, shared: sharedServer } = storageProject('alarm');

/** GET alarm/<room>: {fired, firedCount, starts, alarm, room}. */
async function state(srv, room) {
  const r = await req(srv, `${srv.url}/parties/alarm/${room}`);
  assert.equal(r.status, 200, r.text);
  return r.json();
}

/** Polls until onAlarm has recorded a run; resolves {st, at: Date.now() when seen}. */
async function waitFired(srv, room, timeout, interval = 50) {
  let seenAt = 0;
  const st = await waitFor(async () => {
    const s = await state(srv, room);
    if (s.fired) { seenAt = Date.now(); return s; }
    return null;
  }, timeout, { interval, what: `onAlarm of alarm/${room} to record "fired"` }).catch((e) => {
    throw new Error(`${e.message}\nlog tail:\n${srv.logs().slice(-2000)}`);
  });
  return { st, seenAt };
}

test('setAlarm/getAlarm/deleteAlarm: nil when none, exact epoch ms, replaced, deleted', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'crud';
  assert.equal((await cmd(srv, R, { op: 'getAlarm' })).luaType, 'nil', 'no alarm at first');
  const at = Date.now() + 3_600_000 + 123;
  await cmd(srv, R, { op: 'setAlarm', at });
  const g = await cmd(srv, R, { op: 'getAlarm' });
  assert.equal(g.luaType, 'number');
  assert.equal(g.exact, String(at), 'getAlarm() returns the exact epoch ms');
  const at2 = at + 1000;
  await cmd(srv, R, { op: 'setAlarm', at: at2 });
  assert.equal((await cmd(srv, R, { op: 'getAlarm' })).exact, String(at2), 'a new alarm replaces the old');
  await cmd(srv, R, { op: 'deleteAlarm' });
  assert.equal((await cmd(srv, R, { op: 'getAlarm' })).luaType, 'nil', 'nil after deleteAlarm()');
  await cmd(srv, R, { op: 'deleteAlarm' }); // deleting nothing is fine
  // alarms are per room
  await cmd(srv, R, { op: 'setAlarm', at });
  assert.equal((await cmd(srv, `${R}-other`, { op: 'getAlarm' })).luaType, 'nil', 'another room has no alarm');
  await cmd(srv, R, { op: 'deleteAlarm' });
});

test('onAlarm runs at the set time with retryCount 0 / isRetry false; the alarm is then cleared', { timeout: 15000 }, async () => {
  const srv = await sharedServer();
  const R = 'timing';
  const at = Date.now() + 800;
  await cmd(srv, R, { op: 'setAlarm', at });
  await sleep(Math.max(0, at - 300 - Date.now()));
  const early = await state(srv, R);
  assert.equal(early.fired, undefined, `onAlarm ran ${at - Date.now()} ms early`);
  const { st, seenAt } = await waitFired(srv, R, at + 3000 - Date.now());
  assert.ok(seenAt >= at, 'not before its time');
  assert.ok(seenAt - at < 2500, `ran within 2.5 s of its time (seen ${seenAt - at} ms after)`);
  assert.equal(st.fired.retryCount, 0);
  assert.equal(st.fired.isRetry, false);
  assert.equal(st.fired.id, R, 'self.room.id in onAlarm');
  assert.equal(st.fired.name, 'alarm', 'self.room.name in onAlarm');
  assert.equal(st.firedCount, 1);
  const g = await cmd(srv, R, { op: 'getAlarm' });
  assert.equal(g.luaType, 'nil', `getAlarm() after onAlarm ran is ${g.exact}, expected nil`);
  await sleep(700);
  assert.equal((await state(srv, R)).firedCount, 1, 'onAlarm ran once');
});

test('getAlarm() inside onAlarm is nil: the running alarm is no longer pending', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'inside';
  const at = Date.now() + 200;
  await cmd(srv, R, { op: 'setAlarm', at });
  const { st } = await waitFired(srv, R, 4000);
  assert.equal(st.fired.alarmInside, undefined,
    `getAlarm() in onAlarm returned ${st.fired.alarmInside} (${st.fired.alarmInside - at} ms after the alarm's time), expected nil`);
});

test('an alarm set by onAlarm itself stays and runs (periodic alarm)', { timeout: 15000 }, async () => {
  const srv = await sharedServer();
  const R = 'periodic';
  await cmd(srv, R, { op: 'mode', mode: 'periodic' });
  await cmd(srv, R, { op: 'setAlarm', at: Date.now() + 100 });
  const st = await waitFor(async () => {
    const s = await state(srv, R);
    return s.firedCount >= 3 ? s : null;
  }, 8000, { interval: 100, what: 'onAlarm to have run 3 times' });
  assert.equal(st.firedCount, 3);
  await sleep(1500);
  const end = await state(srv, R);
  assert.equal(end.firedCount, 3, 'no further run once onAlarm stopped setting alarms');
  assert.equal(end.alarm, undefined, 'no alarm left');
});

test('deleteAlarm() before the time: onAlarm does not run', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'cancelled';
  const at = Date.now() + 500;
  await cmd(srv, R, { op: 'setAlarm', at });
  await cmd(srv, R, { op: 'deleteAlarm' });
  await sleep(at + 900 - Date.now());
  const st = await state(srv, R);
  assert.equal(st.fired, undefined, 'onAlarm did not run');
  assert.equal(st.firedCount, 0);
});

test('deleteAll() clears the alarm: onAlarm does not run', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'wiped';
  const at = Date.now() + 500;
  await cmd(srv, R, { op: 'setAlarm', at });
  await cmd(srv, R, { op: 'deleteAll' });
  assert.equal((await cmd(srv, R, { op: 'getAlarm' })).luaType, 'nil');
  await sleep(at + 900 - Date.now());
  const st = await state(srv, R);
  assert.equal(st.fired, undefined, 'onAlarm did not run after deleteAll()');
  assert.equal(st.firedCount, 0);
});

test('a failing onAlarm is retried ~2 s later with retryCount 1 and isRetry true', { timeout: 15000 }, async () => {
  const srv = await sharedServer();
  const R = 'retry';
  await cmd(srv, R, { op: 'mode', mode: 'failOnce' });
  const at = Date.now() + 300;
  await cmd(srv, R, { op: 'setAlarm', at });
  await sleep(at + 1300 - Date.now());
  const mid = await state(srv, R);
  assert.equal(mid.fired, undefined, 'the retry did not come before ~2 s');
  const { st, seenAt } = await waitFired(srv, R, at + 6000 - Date.now());
  const gap = seenAt - at;
  assert.ok(gap >= 1800, `retry ${gap} ms after the first run (expected ~2000)`);
  assert.ok(gap < 4500, `retry ${gap} ms after the first run (expected ~2000)`);
  assert.equal(st.fired.retryCount, 1, 'info.retryCount');
  assert.equal(st.fired.isRetry, true, 'info.isRetry');
  assert.equal(st.fired.runsInThisInstance, 2, 'onAlarm ran exactly twice');
  assert.deepEqual(st.fired.infos, [{ retryCount: 0, isRetry: false }, { retryCount: 1, isRetry: true }]);
  assert.equal(st.firedCount, 1);
  assert.equal((await cmd(srv, R, { op: 'getAlarm' })).luaType, 'nil', 'cleared after the successful retry');
  assert.match(srv.logs(), /planned failure of the first onAlarm run/, 'the failure is logged');
});

test('onAlarm can use self.room.id and self.room.context.parties (fetch another party\'s room)', { timeout: 10000 }, async () => {
  const srv = await sharedServer();
  const R = 'caller';
  await cmd(srv, R, { op: 'mode', mode: 'peer' });
  await cmd(srv, R, { op: 'setAlarm', at: Date.now() + 200 });
  const { st } = await waitFired(srv, R, 4000);
  assert.equal(st.fired.id, R);
  assert.equal(st.fired.peerStatus, 200);
  assert.equal(st.fired.peerBody, `peer peer-of-${R} got ${R}`);
  const peer = await req(srv, `${srv.url}/parties/peer/peer-of-${R}`);
  const pj = peer.json();
  assert.equal(pj.from, R, 'the peer room stored what onAlarm sent');
  assert.equal(new URL(pj.url).pathname, `/parties/peer/peer-of-${R}/from-alarm`);
});

test('onAlarm runs at its time in a room that was unloaded meanwhile', { timeout: 15000 }, async () => {
  const srv = await start({ args: ['--idle-timeout', '0.3'] });
  const R = 'sleeper';
  const at = Date.now() + 1500;
  await cmd(srv, R, { op: 'setAlarm', at });
  assert.equal((await state(srv, R)).starts, 1);
  // no request until well after the alarm time: the room is unloaded after 0.3 s
  await sleep(at + 1200 - Date.now());
  const st = await state(srv, R);
  assert.ok(st.fired, `onAlarm had not run 1.2 s after its time in an unloaded room\nlog tail:\n${srv.logs().slice(-1500)}`);
  assert.equal(st.fired.startsAtAlarm, 2, 'the room was unloaded and loaded again (onStart ran again) for the alarm');
  assert.equal(st.fired.retryCount, 0);
  assert.equal(st.fired.id, R);
  await srv.stop();
});

test('a retry still counts as a retry when the room was unloaded during the backoff', { timeout: 15000 }, async () => {
  const srv = await start({ args: ['--idle-timeout', '0.3'] });
  const R = 'retry-unloaded';
  await cmd(srv, R, { op: 'mode', mode: 'failOnceViaPeer' });
  const at = Date.now() + 300;
  await cmd(srv, R, { op: 'setAlarm', at });
  // no request to the room: it fails at `at`, is unloaded ~0.3 s later, retried ~2 s after `at`
  await sleep(at + 3200 - Date.now());
  const { st } = await waitFired(srv, R, 3000);
  const peer = (await req(srv, `${srv.url}/parties/peer/attempts-${R}`)).json();
  assert.equal(peer.attempts, 2, 'onAlarm ran twice (attempts counted in the peer room)');
  assert.equal(st.fired.attempt, 2);
  assert.ok(st.fired.startsAtAlarm >= 2, `the room was unloaded between the runs (starts=${st.fired.startsAtAlarm})`);
  assert.equal(st.fired.retryCount, 1, 'info.retryCount of the retry');
  assert.equal(st.fired.isRetry, true, 'info.isRetry of the retry');
  await srv.stop();
});

test('an alarm survives a restart: SIGTERM right after setAlarm, restart after 0.5 s', { timeout: 20000 }, async () => {
  const persist = mkTmp('luaparty-alarm-restart-');
  const srv = await start({ persist });
  const R = 'survivor';
  const at = Date.now() + 1500;
  await cmd(srv, R, { op: 'setAlarm', at });
  const st0 = await srv.stop();
  assert.equal(st0.killed, false, 'clean SIGTERM exit');
  assert.equal(st0.code, 0, `exit code ${st0.code}`);
  await sleep(500);
  const srv2 = await start({ persist });
  const g = await cmd(srv2, R, { op: 'getAlarm' });
  if (Date.now() < at - 100) assert.equal(g.exact, String(at), 'the alarm is still set after the restart');
  const { st, seenAt } = await waitFired(srv2, R, 6000);
  assert.ok(seenAt >= at, 'not before its time');
  assert.equal(st.fired.id, R);
  assert.equal(st.fired.retryCount, 0);
  assert.equal(st.firedCount, 1);
});

test('an alarm that came due while the server was down runs soon after the restart', { timeout: 20000 }, async () => {
  const persist = mkTmp('luaparty-alarm-missed-');
  const srv = await start({ persist });
  const R = 'missed';
  const at = Date.now() + 400;
  await cmd(srv, R, { op: 'setAlarm', at });
  await srv.stop();
  await sleep(Math.max(0, at + 600 - Date.now()));
  const srv2 = await start({ persist });
  const t0 = Date.now();
  const { st, seenAt } = await waitFired(srv2, R, 5000);
  assert.ok(seenAt - t0 < 3000, `ran ${seenAt - t0} ms after the restart`);
  assert.equal(st.fired.id, R);
  assert.equal(st.firedCount, 1);
});
