// A full disk under a room's storage: the failure is reported with the
// database file, no acknowledged write is lost, other rooms keep working.
// Needs root (mounts a 1 MiB tmpfs), as the test command always runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { startServer, wsConnect, httpRequest, mkTmp, waitFor, runExpectExit } from './lib/server.mjs';

test('disk full: clear error naming the file, acknowledged writes kept, other rooms served', { timeout: 40000 }, async () => {
  const mnt = mkTmp('luaparty-full-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]);
  let server;
  try {
    server = await startServer({ project: 'diskfull', persist: mnt });
    const writer = await wsConnect(`${server.wsUrl}/parties/main/w`);
    const bystander = await wsConnect(`${server.wsUrl}/parties/main/other`);
    let acked = 0;
    let failedAt = null;
    for (let n = 1; n <= 400 && failedAt === null; n++) {
      writer.send(String(n));
      try {
        const m = await writer.next(2000);
        assert.equal(m.data, `ack ${n}`);
        acked = n;
      } catch {
        failedAt = n; // no ack: the write failed (or the room was reset)
      }
    }
    assert.ok(failedAt !== null && acked > 10, `expected the 1 MiB disk to fill up after some writes (acked ${acked})`);
    const dbFile = path.join(mnt, 'luaparty.db');
    await waitFor(() => server.logs().includes(dbFile) && /full/.test(server.logs()), 3000,
      { what: 'an error naming the database file and the full disk' });
    // the output gate: the ack of the write that failed to commit never left
    assert.match(server.logs(), /storage commit failed, dropping the messages sent after the write/);
    // the server and other rooms are fine
    bystander.send('ping');
    assert.equal((await bystander.next(3000)).data, 'pong');
    assert.ok(server.alive());
    await server.stop();
    server = null;
    // every acknowledged write is there (read on a disk with room to spare)
    const copy = mkTmp('luaparty-full-copy-');
    for (const f of fs.readdirSync(mnt)) fs.copyFileSync(path.join(mnt, f), path.join(copy, f));
    server = await startServer({ project: 'diskfull', persist: copy });
    const res = await httpRequest(`${server.url}/parties/main/w`);
    const stored = Number(res.text);
    assert.ok(stored >= acked, `acknowledged ${acked} writes, found ${stored} after restart`);
  } finally {
    await server?.stop();
    execFileSync('umount', ['-l', mnt]);
  }
});

test('a read-only storage directory: start-up refused with the file named, the data untouched', { timeout: 30000 }, async () => {
  const mnt = mkTmp('luaparty-ro-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
  let server;
  try {
    server = await startServer({ project: 'diskfull', persist: mnt });
    const w = await wsConnect(`${server.wsUrl}/parties/main/w`);
    w.send('1');
    assert.equal((await w.next(3000)).data, 'ack 1');
    await server.stop();
    server = null;
    const before = fs.readFileSync(path.join(mnt, 'luaparty.db'));
    execFileSync('mount', ['-o', 'remount,ro', mnt]);
    const r = await runExpectExit({ project: 'diskfull', persist: mnt });
    assert.notEqual(r.code, 0, 'it must not start without writable storage');
    assert.match(r.logs, new RegExp(`${path.join(mnt, 'luaparty.db').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(r.logs, /read-only|readonly|unable to open/i);
    assert.deepEqual(fs.readFileSync(path.join(mnt, 'luaparty.db')), before, 'the database is unchanged');
    execFileSync('mount', ['-o', 'remount,rw', mnt]);
    server = await startServer({ project: 'diskfull', persist: mnt });
    assert.equal((await httpRequest(`${server.url}/parties/main/w`)).text, '1', 'the write is still there');
  } finally {
    await server?.stop();
    execFileSync('umount', ['-l', mnt]);
  }
});
