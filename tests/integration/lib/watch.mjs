// Servers and clients a test file starts, watched: every client is closed
// after each test, and a server that ends with a non-zero code or a signal
// without a test asking for it (a crash, a sanitizer report, a leak report
// at shutdown) is reported after the test with its log tail.
//
//   const { start, open, died } = watched();   // at the top of a test file
import { after, afterEach } from 'node:test';
import { startServer, wsConnect, closeAll } from './server.mjs';

export function watched() {
  let clients = [];
  const started = [];
  afterEach(async () => {
    await closeAll(clients);
    clients = [];
  });
  async function start(opts) {
    const s = await startServer(opts);
    s.intentional = false;
    s.exited.then((e) => { if (!s.intentional && (e.code !== 0 || e.signal)) s.died = e; });
    s.kill = (sig) => { s.intentional = true; s.proc.kill(sig); };
    started.push(s);
    return s;
  }
  /** " (the server process exited ...)" if it died, to explain a failure; waits up to 1.5 s for the exit. */
  async function died(s) {
    if (s.alive()) await Promise.race([s.exited, new Promise((r) => setTimeout(r, 1500))]);
    await new Promise((r) => setImmediate(r));
    return s.died ? ` (the server process exited by itself: code ${s.died.code}, signal ${s.died.signal})` : '';
  }
  async function reportDead() {
    await new Promise((r) => setTimeout(r, 20));
    for (const s of started) {
      if (s.died && !s.reported) {
        s.reported = true;
        console.log(`\n[luaparty on port ${s.port} ended by itself or badly: code ${s.died.code}, signal ${s.died.signal}]\n` +
          `${s.logs().slice(-5000)}\n[end of its log]`);
      }
    }
  }
  afterEach(reportDead);
  after(reportDead); // servers stopped by a suite's after hook (e.g. a leak report at exit)
  async function open(srv, p, opts) {
    const c = await wsConnect(srv.wsUrl + p, opts);
    clients.push(c);
    return c;
  }
  /** Closes a client opened some other way after the test, too. */
  const track = (c) => { clients.push(c); return c; };
  return { start, open, died, track };
}
