// Runs every compiled test file under dist/test with node's built-in runner.
// Node 20's `--test` does not expand globs, so the files are listed here.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(dir) {
  const files = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...collect(path));
    else if (name.endsWith('.test.js')) files.push(path);
  }
  return files;
}

const filter = process.argv[2];
const files = collect('dist/test').filter((file) => !filter || file.includes(filter));
if (files.length === 0) {
  console.error('no test files found under dist/test; did the build run?');
  process.exit(1);
}
// The real-process tests (whole clusters of node processes under load, with timing-based liveness
// checks) run one file at a time, after the rest: two of them side by side on a 2-core machine
// starve each other's event loops. Everything else runs two files at a time.
const isProcessTest = (file) => file.includes(join('dist', 'test', 'process'));
const phases = [
  { files: files.filter((file) => !isProcessTest(file)), concurrency: 2 },
  { files: files.filter(isProcessTest), concurrency: 1 },
];
let status = 0;
for (const phase of phases) {
  if (phase.files.length === 0) continue;
  const run = spawnSync(process.execPath, ['--test', `--test-concurrency=${phase.concurrency}`, ...phase.files],
    { stdio: 'inherit' });
  if (run.status !== 0) status = run.status ?? 1;
}
process.exit(status);
