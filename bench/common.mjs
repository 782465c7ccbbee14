// What the node bench scripts share: where the repo is, the luaparty binary
// under test (LUAPARTY_BIN), the ws package, numeric --options.
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = process.env.LUAPARTY_BIN ? path.resolve(process.env.LUAPARTY_BIN) : path.join(repo, 'build/luaparty');

let ws;
/** The npm ws package (its WebSocket class): from bench/node_modules, else
 *  from tests/ (installed by the test command). Loaded on first call, so a
 *  script that needs no WebSocket does not need ws. */
export function loadWs() {
  for (const base of ['bench', 'tests']) {
    if (ws) break;
    try { ws = createRequire(path.join(repo, base, 'package.json'))('ws'); } catch { /* try the next place */ }
  }
  if (!ws) {
    console.error('cannot find npm "ws": run `npm install --no-audit --no-fund` in bench/ (or the test command)');
    process.exit(1);
  }
  return ws;
}

const args = process.argv.slice(2);
/** The number after --name on the command line, or dflt. */
export const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};

/** Ends the run after ms (cleanup first, e.g. stopping every child): every
 *  bench script is bounded in time. Returns a function that disarms it. */
export function watchdog(script, ms, cleanup = async () => {}) {
  const t = setTimeout(async () => {
    console.error(`bench/${script}: watchdog: not done within ${ms / 1000} s`);
    await cleanup().catch(() => {});
    process.exit(1);
  }, ms);
  return () => clearTimeout(t);
}
