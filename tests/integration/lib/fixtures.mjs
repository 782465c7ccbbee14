// Setup that several test files share, as node:test hooks:
//
//   const srv = sharedServer({ project: 'coalesce' });  // started before the file's tests, stopped after
//   const { srv, open, join } = suiteServer();           // the same for tests/projects/suite, with clients
//   const servers = stoppedAfterAll();                   // push what you start; stopped after the file
//   const dir = writeProject({ main: 'parties/main.lua' }, { 'parties/main.lua': src });
//   const dir = copyProject('fetch', (cfg) => ({ ...cfg, luaparty: { workers: 3 } }));
//   const line = lineOf(path, 'error("boom")');          // 1-based line of a file holding a text
import { before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, wsConnect, closeAll, mkTmp, projectDir } from './server.mjs';

/**
 * One server for every test of a file: started in a before hook, stopped
 * in an after hook. The returned object stands for it (srv.url, srv.logs(),
 * ...) once the tests run.
 */
export function sharedServer(opts) {
  let server;
  before(async () => { server = await startServer(opts); });
  after(async () => { await server?.stop(); });
  return new Proxy({}, {
    get(_, key) {
      if (!server) throw new Error(`the shared ${opts.project} server is used before it started (outside a test?)`);
      const v = server[key];
      return typeof v === 'function' ? v.bind(server) : v;
    },
  });
}

/**
 * The tests/projects/suite server shared by a file's tests, and WebSocket
 * clients to it that are closed after each test.
 * open(pathAndQuery) connects; join(room, query) connects to a "main" room
 * and reads its hello ({type: 'hello', id, ...}) into c.hello and c.id.
 */
export function suiteServer() {
  const srv = sharedServer({ project: 'suite' });
  let clients = [];
  afterEach(async () => { await closeAll(clients); clients = []; });
  async function open(pathAndQuery, opts) {
    const c = await wsConnect(srv.wsUrl + pathAndQuery, opts);
    clients.push(c);
    return c;
  }
  async function join(room, query = '') {
    const c = await open(`/parties/main/${room}${query}`);
    c.hello = await c.nextJson();
    assert.equal(c.hello.type, 'hello');
    c.id = c.hello.id;
    return c;
  }
  return { srv, open, join };
}

/** An array for the servers a file starts; every one is stopped after the file's tests. */
export function stoppedAfterAll() {
  const servers = [];
  after(async () => { for (const s of servers) await s.stop(); });
  return servers;
}

/**
 * A new project in a temp dir: partykit.json (an object, or text written
 * as it is) and files {relative path: content}.
 */
export function writeProject(config, files = {}, prefix = 'luaparty-project-') {
  const dir = mkTmp(prefix);
  fs.writeFileSync(path.join(dir, 'partykit.json'), typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  for (const [f, src] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.writeFileSync(path.join(dir, f), src);
  }
  return dir;
}

/**
 * A copy of a project (see projectDir) in a temp dir, without its storage,
 * with partykit.json replaced by edit(the parsed original).
 */
export function copyProject(project, edit, prefix = 'luaparty-copy-') {
  const dir = mkTmp(prefix);
  fs.cpSync(projectDir(project), dir, { recursive: true, filter: (src) => !src.includes('.luaparty') });
  const file = path.join(dir, 'partykit.json');
  fs.writeFileSync(file, JSON.stringify(edit(JSON.parse(fs.readFileSync(file, 'utf8')))));
  return dir;
}

/** The 1-based number of the first line of file that contains needle (asserts there is one). */
export function lineOf(file, needle) {
  const i = fs.readFileSync(file, 'utf8').split('\n').findIndex((l) => l.includes(needle));
  assert.ok(i >= 0, `${path.basename(file)} contains ${needle}`);
  return i + 1;
}
