// What the node bench scripts (reload.mjs, tls.mjs, rooms.mjs) share: where the repo
// is, the luaparty binary under test, the ws client, numeric --options.
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = process.env.LUAPARTY_BIN ? path.resolve(process.env.LUAPARTY_BIN) : path.join(repo, 'build/luaparty');

// ws from bench/node_modules, else from tests/ (installed by the test command)
const require = createRequire(import.meta.url);
let ws;
try { ws = require('ws'); } catch {
  ws = createRequire(path.join(repo, 'tests/package.json'))('ws');
}
export const WebSocket = ws;

const args = process.argv.slice(2);
/** The number after --name on the command line, or dflt. */
export const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
