// Bundles src/app.js (yjs and y-partykit from npm) into public/app.js with
// esbuild. The packages come from this folder's node_modules (npm install
// here) or, if that is absent, from tests/node_modules (scripts/install-deps.sh
// --test installs them there): nothing is downloaded at build time.
import path from 'node:path';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const roots = [path.join(here, 'node_modules'), path.join(here, '../../tests/node_modules')]
  .filter((d) => fs.existsSync(path.join(d, 'esbuild')));
if (roots.length === 0) {
  console.error('build.mjs: no esbuild: run npm install in examples/yjs (or scripts/install-deps.sh --test)');
  process.exit(1);
}
const esbuild = createRequire(path.join(roots[0], 'x.js'))('esbuild');

export async function build({ quiet = false } = {}) {
  const out = path.join(here, 'public/app.js');
  await esbuild.build({
    entryPoints: [path.join(here, 'src/app.js')],
    bundle: true,
    format: 'esm',
    target: 'es2020',
    minify: true,
    nodePaths: roots,
    outfile: out,
    logLevel: quiet ? 'error' : 'info',
  });
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await build();
