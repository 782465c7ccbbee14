#!/usr/bin/env node
// End-to-end: the example pages in headless Chromium (Debian's /usr/bin/chromium,
// driven by npm playwright-core) against real luaparty servers on 127.0.0.1.
//
//   node tests/e2e/run.mjs            # from the repo root (or: cd tests && node e2e/run.mjs)
//   LUAPARTY_BIN=/path/to/luaparty    # binary under test (default build/luaparty)
//   CHROMIUM=/path/to/chromium        # browser (default /usr/bin/chromium)
//   E2E_SHOTS=/tmp                    # where the screenshots go (default /tmp)
//
// examples/multiparty: two pages join a room, the live counts on the page go to 2,
// one page closes, they drop to 1. examples/chat: two pages with names, a message
// from one shows in the other, a reload shows the history. The page `luaparty init`
// writes: over http, and over https (--tls-cert), where it must use wss://.
// examples/yjs (bundled here with esbuild): two tabs of a Yjs document, typing in
// one shows in the other, a reload keeps the text.
// The last line is "N passed, N failed"; the exit code is 1 on any failure.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startServer, mkTmp, REPO, BIN } from '../integration/lib/server.mjs';
import { serverCerts } from '../integration/lib/certs.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.E2E_SHOTS || '/tmp';
const WATCHDOG_MS = Number(process.env.E2E_WATCHDOG_MS || 120_000);
const STEP_MS = 8000; // the longest any single wait may take

let passed = 0;
let failed = 0;
const failures = [];
const cleanups = [];

const watchdog = setTimeout(async () => {
  console.log(`watchdog: the e2e run did not finish within ${WATCHDOG_MS} ms`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, WATCHDOG_MS);

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`  ✔ ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    failures.push(name);
    console.log(`  ✖ ${name} (${Date.now() - t0} ms)\n    ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n    ')}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.log(`cannot load playwright-core (run npm install in tests/): ${e.message}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
if (!fs.existsSync(CHROMIUM)) {
  console.log(`no browser at ${CHROMIUM} (apt-get install -y chromium)`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

/** Every page: record errors and every URL it asks for (nothing may leave 127.0.0.1). */
function track(page, tag, sink) {
  page.on('pageerror', (e) => sink.errors.push(`${tag}: pageerror ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') sink.errors.push(`${tag}: console ${m.text()}`); });
  page.on('request', (r) => sink.urls.push(r.url()));
  page.on('response', (r) => { if (r.status() >= 400) sink.errors.push(`${tag}: ${r.status()} for ${r.url()}`); });
  page.on('websocket', (w) => sink.urls.push(w.url()));
  return page;
}

/** The text of a selector, or null. */
const textOf = (page, sel) => page.evaluate((s) => document.querySelector(s)?.textContent ?? null, sel);

/** The count shown in the multiparty table for a room, or null if the row is absent. */
const countOf = (page, room) => page.evaluate((r) => {
  for (const tr of document.querySelectorAll('#rooms-body tr')) if (tr.dataset.room === r) return tr.querySelector('td.count').textContent;
  return null;
}, room);

async function waitCount(page, room, want, what) {
  try {
    await page.waitForFunction(([r, w]) => {
      for (const tr of document.querySelectorAll('#rooms-body tr')) if (tr.dataset.room === r) return tr.querySelector('td.count').textContent === w;
      return false;
    }, [room, String(want)], { timeout: STEP_MS });
  } catch {
    throw new Error(`${what}: the page shows ${room} = ${await countOf(page, room)}, expected ${want}`);
  }
}

const chatTexts = (page) => page.evaluate(() => [...document.querySelectorAll('#messages li.msg')].map((li) => ({
  name: li.querySelector('.name').textContent, text: li.querySelector('.text').textContent,
})));

async function waitChat(page, text, what) {
  try {
    await page.waitForFunction((t) => [...document.querySelectorAll('#messages li.msg .text')].some((e) => e.textContent === t), text, { timeout: STEP_MS });
  } catch {
    throw new Error(`${what}: "${text}" not among ${JSON.stringify(await chatTexts(page))}`);
  }
}

async function shot(page, name) {
  const file = path.join(SHOTS, `luaparty-e2e-${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: STEP_MS });
  console.log(`    screenshot: ${file}`);
  return file;
}

console.log(`e2e: ${CHROMIUM}, luaparty ${path.relative(REPO, process.env.LUAPARTY_BIN || path.join(REPO, 'build/luaparty')) || '?'}`);

let context;
const sink = { errors: [], urls: [] };
const origins = [];
try {
  const profile = mkTmp('luaparty-e2e-profile-');
  cleanups.push(() => fs.rmSync(profile, { recursive: true, force: true }));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1000, height: 700 },
    timeout: 30000,
  });
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);

  // ------------------------------------------------------------ multiparty
  console.log('examples/multiparty');
  const mpPersist = mkTmp('luaparty-e2e-mp-');
  const mp = await startServer({ project: 'examples/multiparty', persist: mpPersist, startTimeout: 15000 });
  cleanups.push(() => mp.stop());
  origins.push(mp.url);
  const ROOM = 'e2e-room';
  let pa;
  let pb;

  await check('multiparty: the page loads from "serve" and its updates socket goes live', async () => {
    pa = track(await context.newPage(), 'mp-a', sink);
    const res = await pa.goto(`${mp.url}/`);
    assert(res.status() === 200, `GET / is ${res.status()}`);
    assert((await pa.title()).includes('multiparty'), `title ${await pa.title()}`);
    await pa.waitForFunction(() => document.getElementById('live').textContent === 'live', null, { timeout: STEP_MS });
  });

  await check('multiparty: two pages join a room; both pages show 2 connections', async () => {
    await pa.fill('#room-input', ROOM);
    await pa.click('#join-button');
    await pa.waitForFunction(() => document.getElementById('me').classList.contains('joined'), null, { timeout: STEP_MS });
    await waitCount(pa, ROOM, 1, 'after the first page joined');
    pb = track(await context.newPage(), 'mp-b', sink);
    await pb.goto(`${mp.url}/?room=${ROOM}`); // joins from the query string
    await waitCount(pb, ROOM, 2, 'page b');
    await waitCount(pa, ROOM, 2, 'page a (pushed by the updates socket)');
    assert((await textOf(pa, '#total')) === '2', `total ${await textOf(pa, '#total')}`);
  });

  await check('multiparty: closing one page drops the count to 1', async () => {
    await pb.close();
    await waitCount(pa, ROOM, 1, 'after page b closed');
  });

  await check('multiparty: switching rooms moves the count; a new page gets the state over HTTP', async () => {
    await pa.fill('#room-input', 'second-room');
    await pa.click('#join-button');
    await waitCount(pa, 'second-room', 1, 'second-room');
    await waitCount(pa, ROOM, 0, ROOM);
    const pc = track(await context.newPage(), 'mp-c', sink);
    await pc.goto(`${mp.url}/`);
    await waitCount(pc, 'second-room', 1, 'a page that did not join');
    const fromHttp = await pc.evaluate(async () => (await fetch('/parties/connections/active-connections')).json());
    assert(fromHttp['second-room'] === 1 && fromHttp[ROOM] === 0, `GET gives ${JSON.stringify(fromHttp)}`);
    await pc.close();
  });

  await check('multiparty: screenshot', async () => {
    const file = await shot(pa, 'multiparty');
    assert(fs.statSync(file).size > 5000, 'a non-trivial PNG');
  });

  // ------------------------------------------------------------ chat
  console.log('examples/chat');
  const chatPersist = mkTmp('luaparty-e2e-chat-');
  const chat = await startServer({ project: 'examples/chat', persist: chatPersist, startTimeout: 15000 });
  cleanups.push(() => chat.stop());
  origins.push(chat.url);
  let ca;
  let cb;
  const CHAT_ROOM = 'e2e-chat';

  await check('chat: two pages join a room with names and see each other', async () => {
    ca = track(await context.newPage(), 'chat-ann', sink);
    await ca.goto(`${chat.url}/`);
    await ca.fill('#name', 'Ann');
    await ca.fill('#room', CHAT_ROOM);
    await ca.click('#join');
    await ca.waitForFunction(() => document.getElementById('conn-state').textContent === 'connected', null, { timeout: STEP_MS });
    cb = track(await context.newPage(), 'chat-ben', sink);
    await cb.goto(`${chat.url}/?room=${CHAT_ROOM}&name=Ben`);
    await cb.waitForFunction(() => document.getElementById('conn-state').textContent === 'connected', null, { timeout: STEP_MS });
    await ca.waitForFunction(() => [...document.querySelectorAll('#users li')].some((li) => li.textContent === 'Ben'), null, { timeout: STEP_MS });
    const benSees = await cb.evaluate(() => [...document.querySelectorAll('#users li')].map((li) => li.textContent).sort());
    assert(JSON.stringify(benSees) === JSON.stringify(['Ann', 'Ben (you)']), `Ben's user list: ${JSON.stringify(benSees)}`);
  });

  await check('chat: a message from one page appears in the other', async () => {
    await ca.fill('#text', 'hello from Ann <b>not bold</b>');
    await ca.click('#send');
    await waitChat(cb, 'hello from Ann <b>not bold</b>', 'on Ben\'s page');
    await waitChat(ca, 'hello from Ann <b>not bold</b>', 'on Ann\'s own page');
    const bold = await cb.evaluate(() => document.querySelectorAll('#messages b').length);
    assert(bold === 0, 'message text is shown as text, not HTML');
    await cb.fill('#text', 'hi Ann, Ben here');
    await cb.press('#text', 'Enter');
    await waitChat(ca, 'hi Ann, Ben here', 'on Ann\'s page');
    const last = (await chatTexts(ca)).at(-1);
    assert(last.name === 'Ben', `sender name shown: ${JSON.stringify(last)}`);
  });

  await check('chat: a reload shows the history', async () => {
    await cb.reload();
    await cb.waitForFunction(() => document.getElementById('conn-state').textContent === 'connected', null, { timeout: STEP_MS });
    await waitChat(cb, 'hi Ann, Ben here', 'after reload');
    const texts = (await chatTexts(cb)).map((m) => `${m.name}: ${m.text}`);
    assert(JSON.stringify(texts) === JSON.stringify(['Ann: hello from Ann <b>not bold</b>', 'Ben: hi Ann, Ben here']),
      `history after reload: ${JSON.stringify(texts)}`);
  });

  await check('chat: screenshots', async () => {
    await ca.fill('#text', 'see you!');
    await ca.click('#send');
    await waitChat(cb, 'see you!', 'last message, on Ben\'s page');
    await waitChat(ca, 'see you!', 'last message, on Ann\'s own page');
    for (const [p, n] of [[ca, 'chat-ann'], [cb, 'chat-ben']]) {
      const file = await shot(p, n);
      assert(fs.statSync(file).size > 5000, 'a non-trivial PNG');
    }
  });

  // ------------------------------------------------------------ luaparty init
  console.log('luaparty init (http, then https with --tls-cert)');
  const initWork = mkTmp('luaparty-e2e-init-');
  cleanups.push(() => fs.rmSync(initWork, { recursive: true, force: true }));
  const made = spawnSync(BIN, ['init', 'app'], { cwd: initWork, encoding: 'utf8' });
  assert(made.status === 0, `luaparty init: ${made.stderr}`);
  const initDir = path.join(initWork, 'app');
  const certs = serverCerts('e2e');
  cleanups.push(() => fs.rmSync(certs.dir, { recursive: true, force: true }));
  // a browser of its own that takes the test CA's certificate (the persistent one above stays strict)
  const tlsBrowser = await chromium.launch({
    executablePath: CHROMIUM, headless: true, timeout: 30000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  cleanups.push(() => tlsBrowser.close());
  const tlsContext = await tlsBrowser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 800, height: 600 } });
  tlsContext.setDefaultTimeout(STEP_MS);
  const logText = (page) => page.evaluate(() => document.getElementById('log').textContent);
  for (const [scheme, args] of [['http', []], ['https', ['--tls-cert', certs.good.certFile, '--tls-key', certs.good.keyFile]]]) {
    await check(`init page over ${scheme}: it joins the room over ${scheme === 'https' ? 'wss' : 'ws'}:// and talks`, async () => {
      const srv = await startServer({ project: initDir, persist: mkTmp('luaparty-e2e-init-data-'), args, startTimeout: 15000 });
      cleanups.push(() => srv.stop());
      assert(srv.url.startsWith(`${scheme}://`), `served over ${srv.url}`);
      const own = { errors: [], urls: [] };
      const page = track(await tlsContext.newPage(), `init-${scheme}`, own);
      const res = await page.goto(`${srv.url}/`);
      assert(res.status() === 200, `GET / is ${res.status()}`);
      try {
        await page.waitForFunction(() => document.getElementById('log').textContent.includes('"welcome"'), null, { timeout: STEP_MS });
      } catch {
        throw new Error(`no welcome message; the page log says ${JSON.stringify(await logText(page))}; errors: ${own.errors.join(' | ')}`);
      }
      await page.fill('#text', `hello over ${scheme}`);
      await page.click('#send');
      await page.waitForFunction((t) => document.getElementById('log').textContent.includes(t), `"text":"hello over ${scheme}"`, { timeout: STEP_MS });
      const sockets = own.urls.filter((u) => /^wss?:/.test(u));
      const want = `${scheme === 'https' ? 'wss' : 'ws'}://127.0.0.1:${srv.port}/parties/main/lobby`;
      assert(sockets.length === 1 && sockets[0] === want, `sockets ${JSON.stringify(sockets)}, expected ${want}`);
      assert(own.errors.length === 0, `errors: ${own.errors.join(' | ')}`);
      await page.close();
    });
  }

  // ------------------------------------------------------------ yjs notes
  console.log('examples/yjs');
  const { build: buildYjs } = await import('../../examples/yjs/build.mjs');
  await buildYjs({ quiet: true }); // yjs + y-partykit from npm, bundled with esbuild
  const yjsPersist = mkTmp('luaparty-e2e-yjs-');
  const ysrv = await startServer({ project: 'examples/yjs', persist: yjsPersist, startTimeout: 15000 });
  cleanups.push(() => ysrv.stop());
  origins.push(ysrv.url);
  const NOTES = `${ysrv.url}/?doc=e2e-notes`;
  const editorValue = (page) => page.evaluate(() => document.getElementById('editor').value);
  const waitEditor = async (page, pred, what) => {
    try {
      await page.waitForFunction(pred, null, { timeout: STEP_MS });
    } catch {
      throw new Error(`${what}: the editor shows ${JSON.stringify(await editorValue(page))}`);
    }
  };
  let ya;
  let yb;

  await check('yjs: two tabs of a document; typing in one appears in the other', async () => {
    ya = track(await context.newPage(), 'yjs-a', sink);
    await ya.goto(NOTES);
    await ya.waitForFunction(() => document.body.dataset.synced === 'true', null, { timeout: STEP_MS });
    await ya.fill('#name', 'Ada');
    await ya.click('#editor');
    await ya.keyboard.type('hello from tab A');
    yb = track(await context.newPage(), 'yjs-b', sink);
    await yb.goto(NOTES);
    await yb.waitForFunction(() => document.body.dataset.synced === 'true', null, { timeout: STEP_MS });
    await waitEditor(yb, () => document.getElementById('editor').value === 'hello from tab A', 'tab B after it synced');
    await yb.click('#editor');
    await yb.keyboard.press('End');
    await yb.keyboard.type(', and B');
    await waitEditor(ya, () => document.getElementById('editor').value === 'hello from tab A, and B', 'tab A, live');
    // both at once: each tab types at its own end of the text
    await ya.keyboard.press('Home');
    await Promise.all([ya.keyboard.type('>> '), yb.keyboard.type('!')]);
    const want = '>> hello from tab A, and B!';
    await waitEditor(ya, (w) => document.getElementById('editor').value === '>> hello from tab A, and B!', 'tab A after both typed');
    await waitEditor(yb, (w) => document.getElementById('editor').value === '>> hello from tab A, and B!', 'tab B after both typed');
    assert((await editorValue(ya)) === want, 'converged');
  });

  await check('yjs: who is here, from awareness', async () => {
    await yb.waitForFunction(() => [...document.querySelectorAll('#people li')].some((li) => li.textContent === 'Ada'), null, { timeout: STEP_MS });
    const names = await ya.evaluate(() => [...document.querySelectorAll('#people li')].map((li) => li.textContent));
    assert(names.length === 2 && names.includes('Ada (you)'), `tab A lists ${JSON.stringify(names)}`);
  });

  await check('yjs: a reload keeps the text (from the server), and a third tab gets it too', async () => {
    await yb.reload();
    await yb.waitForFunction(() => document.body.dataset.synced === 'true', null, { timeout: STEP_MS });
    await waitEditor(yb, () => document.getElementById('editor').value === '>> hello from tab A, and B!', 'tab B after reload');
    const stored = await (await fetch(`${ysrv.url}/parties/main/e2e-notes?info`)).json();
    assert(stored.documentBytes > 20, `the server holds the document: ${JSON.stringify(stored)}`);
    const yc = track(await context.newPage(), 'yjs-c', sink);
    await yc.goto(NOTES);
    await waitEditor(yc, () => document.getElementById('editor').value === '>> hello from tab A, and B!', 'a new tab');
    await yc.close();
  });

  await check('yjs: screenshot', async () => {
    const file = await shot(ya, 'yjs-notes');
    assert(fs.statSync(file).size > 5000, 'a non-trivial PNG');
  });

  await check('pages: no script errors, and no request left 127.0.0.1', async () => {
    assert(sink.errors.length === 0, `errors: ${sink.errors.join(' | ')}`);
    const outside = sink.urls.filter((u) => !origins.some((o) => u.startsWith(o) || u.startsWith(o.replace('http:', 'ws:'))));
    assert(outside.length === 0, `requests elsewhere: ${outside.join(', ')}`);
    assert(sink.urls.some((u) => u.startsWith('ws://')), 'the pages used WebSockets');
  });
} catch (e) {
  failed++;
  failures.push('setup');
  console.log(`  ✖ setup: ${e && e.stack || e}`);
} finally {
  try { if (context) await context.close(); } catch { /* ignore */ }
  for (const c of cleanups.reverse()) {
    try { await c(); } catch { /* ignore */ }
  }
  clearTimeout(watchdog);
}

if (failures.length) {
  console.log('\nfailed:');
  for (const f of failures) console.log(`  - ${f}`);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
