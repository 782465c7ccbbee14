// What the node bench scripts share: where the repo is, the luaparty binary
// under test (LUAPARTY_BIN), the ws package, numeric --options, a watchdog,
// running a child for its output, quantiles and number formatting.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
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

/** CPU seconds (user + system) process pid used so far, from /proc (null if
 *  it cannot be read). */
export function cpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return null;
  }
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

/** Runs cmd to its end (killed after timeoutMs): {code, out}, stdout and
 *  stderr together. Rejects only if it cannot be started. */
export function runCapture(cmd, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code) => { clearTimeout(t); resolve({ code, out }); });
  });
}

/** The f-quantile (0..1) of the numbers in xs (not changed). */
export const quantile = (xs, f) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(f * s.length))];
};

/** x with d decimals, or '-' if it is not a number. */
export const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
