#!/usr/bin/env node
// Runs tests/integration/*.test.mjs with node:test, prints the spec report,
// then, as the very last line, "N passed, N failed" (counting tests, not
// suites). Exits 1 on any failure (or if no test ran).
//
//   node tests/integration/run.mjs [substring ...]   # only files whose name matches
//   LUAPARTY_BIN=/path/to/luaparty                    # binary under test
//   LUAPARTY_TEST_CONCURRENCY=2                       # test files run in parallel
import { run } from 'node:test';
import { spec } from 'node:test/reporters';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const filters = process.argv.slice(2);
const files = fs.readdirSync(here)
  .filter((f) => f.endsWith('.test.mjs'))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort()
  .map((f) => path.join(here, f));

if (files.length === 0) {
  console.log(`no test files match ${filters.join(' ')}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}

const WATCHDOG_MS = Number(process.env.LUAPARTY_TEST_WATCHDOG_MS || 240_000);
const concurrency = Number(process.env.LUAPARTY_TEST_CONCURRENCY || 2);

let passed = 0;
let failed = 0;
const failures = [];

const stream = run({ files, concurrency, timeout: 60_000 });
stream.on('test:pass', (d) => {
  if (d.details?.type === 'suite') return;
  passed++;
});
stream.on('test:fail', (d) => {
  if (d.details?.type === 'suite') return;
  failed++;
  failures.push(`${path.basename(d.file || '?')}: ${d.name}`);
});

const watchdog = setTimeout(() => {
  console.log(`\nwatchdog: the suite did not finish within ${WATCHDOG_MS} ms`);
  console.log(`${passed} passed, ${failed + 1} failed`);
  process.exit(1);
}, WATCHDOG_MS);

const reporter = stream.compose(typeof spec === 'function' && spec.prototype?._transform ? new spec() : spec);
reporter.pipe(process.stdout, { end: false });
reporter.on('end', () => {
  clearTimeout(watchdog);
  if (failures.length) {
    console.log('\nfailed tests:');
    for (const f of failures) console.log(`  - ${f}`);
  }
  const total = passed + failed;
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 || total === 0 ? 1 : 0;
});
