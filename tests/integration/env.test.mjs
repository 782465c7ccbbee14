// Secrets and room.env: partykit.json "vars", then .env, then .env.local,
// then --var KEY=VALUE (repeatable), each overriding the ones before; the
// values are never logged; `luaparty dev` picks up a changed .env in live
// rooms (their sockets stay open, onReload runs). Each test writes its own
// project into a temporary folder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { mkTmp, startServerPatient, runExpectExit, wsConnect, httpRequest, waitFor, closeAll } from './lib/server.mjs';

const PARTY = `
local json = require "cjson"
local P = {}
function P:onConnect(conn) conn:send(json.encode(self.room.env)) end
function P:onReload() self.reloads = (self.reloads or 0) + 1 end
function P:onMessage(msg, sender) sender:send(json.encode({ env = self.room.env, reloads = self.reloads or 0 })) end
function P:onRequest(req) return json.encode(self.room.env) end
function P.onBeforeRequest(req, lobby)
  -- the lobby sees the same env
  if lobby.env.GATE ~= "open" then return require("luaparty").Response.new("gate closed", { status = 403 }) end
end
return P
`;

function project(files) {
  const dir = mkTmp('luaparty-env-');
  fs.mkdirSync(path.join(dir, 'parties'));
  fs.writeFileSync(path.join(dir, 'parties/main.lua'), PARTY);
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  return dir;
}

const SECRETS = ['s3cr3t-from-dotenv', 's3cr3t-from-local', 's3cr3t-from-cli'];

test('room.env: --var over .env.local over .env over partykit.json "vars"; values never logged', { timeout: 20000 }, async () => {
  const dir = project({
    'partykit.json': JSON.stringify({
      name: 'env', main: 'parties/main.lua',
      vars: { GATE: 'open', A: 'json', B: 'json', C: 'json', D: 'json', N: 5 },
    }),
    '.env': `# secrets stay out of git\nB=env\nC=env\nD=env\nAPI_KEY=${SECRETS[0]}\nexport QUOTED="two\\nlines"\n`,
    '.env.local': `C=local\nD=local\nLOCAL_KEY=${SECRETS[1]}\n`,
  });
  const s = await startServerPatient({ project: dir, args: ['--var', 'D=cli', '--var', `CLI_KEY=${SECRETS[2]}`, '--var', 'EQ=a=b'] });
  try {
    const env = (await httpRequest(`${s.url}/parties/main/r1`)).json();
    assert.deepEqual(env, {
      GATE: 'open', A: 'json', B: 'env', C: 'local', D: 'cli', N: 5, EQ: 'a=b', QUOTED: 'two\nlines',
      API_KEY: SECRETS[0], LOCAL_KEY: SECRETS[1], CLI_KEY: SECRETS[2],
    });
    const c = await wsConnect(`${s.wsUrl}/parties/main/r1`);
    assert.equal((await c.nextJson()).CLI_KEY, SECRETS[2], 'a room sees the same env over WebSocket');
    await closeAll([c]);
    assert.match(s.logs(), /room\.env: 6 from partykit\.json "vars", 5 from \.env, 3 from \.env\.local, 3 from --var \(values are never logged\)/);
  } finally {
    await s.stop();
  }
  for (const v of SECRETS) assert.ok(!s.logs().includes(v), `the log does not show ${v}`);
});

test('a bad .env stops start-up with the file and the line, not the value', { timeout: 15000 }, async () => {
  const dir = project({
    'partykit.json': JSON.stringify({ name: 'env', main: 'parties/main.lua' }),
    '.env': `OK=1\nTOKEN ${SECRETS[0]}\n`,
  });
  const r = await runExpectExit({ project: dir });
  assert.equal(r.code, 2);
  assert.match(r.logs, /\/\.env: line 2: expected NAME=VALUE/);
  assert.ok(!r.logs.includes(SECRETS[0]));
  const bad = await runExpectExit({ project: dir, args: ['--var', SECRETS[1]] });
  assert.equal(bad.code, 2);
  assert.match(bad.logs, /--var needs KEY=VALUE/);
  assert.ok(!bad.logs.includes(SECRETS[1]), 'a --var without = is not echoed either');
});

test('luaparty dev picks up a changed .env and .env.local in live rooms; --var still wins', { timeout: 30000 }, async () => {
  const dir = project({
    'partykit.json': JSON.stringify({ name: 'env', main: 'parties/main.lua', vars: { GATE: 'open' } }),
    '.env': 'MODE=one\nPINNED=env\n',
  });
  const s = await startServerPatient({ project: dir, args: ['--var', 'PINNED=cli'] });
  const clients = [];
  try {
    const c = await wsConnect(`${s.wsUrl}/parties/main/live`);
    clients.push(c);
    assert.equal((await c.nextJson()).MODE, 'one');
    fs.writeFileSync(path.join(dir, '.env'), `MODE=two\nPINNED=env2\nTOKEN=${SECRETS[0]}\n`);
    await waitFor(async () => (await httpRequest(`${s.url}/parties/main/live`)).json().MODE === 'two', 8000,
      { what: 'room.env.MODE to become "two"' });
    c.send('state');
    const st = await c.nextJson();
    assert.equal(st.env.MODE, 'two', 'the live room (same instance, same socket) has the new env');
    assert.equal(st.env.TOKEN, SECRETS[0]);
    assert.equal(st.env.PINNED, 'cli', '--var still wins after the reload');
    assert.ok(st.reloads >= 1, 'onReload ran');
    // .env.local appears: it wins over .env
    fs.writeFileSync(path.join(dir, '.env.local'), 'MODE=three\n');
    await waitFor(async () => (await httpRequest(`${s.url}/parties/main/live`)).json().MODE === 'three', 8000,
      { what: 'room.env.MODE to become "three"' });
    // the lobby (static hooks) gets it too
    fs.writeFileSync(path.join(dir, '.env.local'), 'MODE=three\nGATE=shut\n');
    await waitFor(async () => (await httpRequest(`${s.url}/parties/main/live`)).status === 403, 8000,
      { what: 'onBeforeRequest to see GATE=shut' });
    // a bad .env keeps the running env, and says where
    fs.writeFileSync(path.join(dir, '.env'), `MODE=four\nTOKEN="${SECRETS[1]}\n`);
    await waitFor(() => /reload: .*\/\.env: line 2: the value of TOKEN has no closing "; still running the previous code/.test(s.logs()),
      8000, { what: 'the reload error' });
    c.send('state');
    assert.equal((await c.nextJson()).env.MODE, 'three');
    assert.equal(c.closeInfo, null, 'the socket stayed open throughout');
    assert.match(s.logs(), /reloaded 0 parties and vars/);
  } finally {
    await closeAll(clients);
    await s.stop();
  }
  for (const v of SECRETS) assert.ok(!s.logs().includes(v), `the log does not show ${v}`);
});
