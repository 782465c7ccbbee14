// Helpers for the tests driving tests/projects/storage (storage and alarms):
// servers started here are stopped after the file; a failed request says
// whether the server still runs and shows its log.
import assert from 'node:assert/strict';
import { startServer, httpRequest } from './server.mjs';
import { stoppedAfterAll } from './fixtures.mjs';

export function storageProject(defaultParty) {
  const servers = stoppedAfterAll();

  /** httpRequest, and if it fails, say whether the server is still running and show its log. */
  async function req(srv, url, opts) {
    try {
      return await httpRequest(url, opts);
    } catch (e) {
      e.message += `\nserver ${srv.alive() ? 'still running' : `exited: ${JSON.stringify(srv.exitInfo)}`}` +
        `\nlog tail:\n${srv.logs().slice(-2000)}`;
      throw e;
    }
  }

  async function start({ persist, args = [] } = {}) {
    const s = await startServer({ project: 'storage', persist, args });
    servers.push(s);
    return s;
  }

  /** POSTs a JSON command to /parties/<party>/<room>; asserts 200, returns the JSON answer. */
  async function cmd(srv, room, body, party = defaultParty) {
    const r = await req(srv, `${srv.url}/parties/${party}/${room}`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    assert.equal(r.status, 200, `${party}/${room} ${JSON.stringify(body).slice(0, 200)} -> ${r.status} ${r.text}` +
      `\nlog tail:\n${srv.logs().slice(-1500)}`);
    return r.json();
  }

  /** One server for the tests that do not need their own, started on first use. */
  let sharedOne;
  async function shared() {
    if (!sharedOne) sharedOne = await start();
    return sharedOne;
  }

  return { req, start, cmd, shared };
}
