// Runs every compiled test file under dist/test with node's built-in runner.
// Node 20's `--test` does not expand globs, so the files are listed here.
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { spawn } from 'node:child_process';

function collect(dir) {
  const files = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) files.push(...collect(path));
    else if (name.endsWith('.test.js')) files.push(path);
  }
  return files;
}

// Each argument is a substring of a test file's path; a file runs when it matches any of them.
const filters = process.argv.slice(2);
const files = collect('dist/test').filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter)));
if (files.length === 0) {
  console.error(filters.length === 0 ? 'no test files found under dist/test; did the build run?'
    : `no test file under dist/test matches ${filters.join(' or ')}`);
  process.exit(1);
}
// The real-process tests (whole clusters of node processes under load, with timing-based liveness
// checks) run one file at a time, after the rest: two of them side by side on a 2-core machine
// starve each other's event loops. The nemesis suite (test/nemesis) is one of them. Everything else
// runs two files at a time.
const isProcessTest = (file) => ['process', 'nemesis'].some((dir) => file.includes(join('dist', 'test', dir)));
const phases = [
  { files: files.filter((file) => !isProcessTest(file)), concurrency: 2 },
  { files: files.filter(isProcessTest), concurrency: 1 },
];
/**
 * Run one phase. People read node's spec report (one line a test, failures in full at the end);
 * the counts come from a TAP report written beside it to a file.
 */
function runPhase(phase, index) {
  const tapFile = join(mkdtempSync(join(tmpdir(), 'multipaxos-tests-')), `phase-${index}.tap`);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [
      '--test', `--test-concurrency=${phase.concurrency}`,
      '--test-reporter=spec', '--test-reporter-destination=stdout',
      '--test-reporter=tap', `--test-reporter-destination=${tapFile}`,
      ...phase.files,
    ], { stdio: 'inherit' });
    child.on('close', (code) => {
      const counts = { pass: 0, fail: 0, skipped: 0, todo: 0 };
      for (const line of readFileSync(tapFile, 'utf8').split('\n')) {
        const match = /^# (pass|fail|skipped|todo) (\d+)$/.exec(line);
        if (match !== null) counts[match[1]] = Number(match[2]);
      }
      rmSync(dirname(tapFile), { recursive: true, force: true });
      resolve({ status: code ?? 1, counts });
    });
  });
}

let status = 0;
const total = { pass: 0, fail: 0, skipped: 0, todo: 0 };
for (const [index, phase] of phases.entries()) {
  if (phase.files.length === 0) continue;
  const { status: phaseStatus, counts } = await runPhase(phase, index);
  if (phaseStatus !== 0) status = phaseStatus;
  total.pass += counts.pass;
  total.fail += counts.fail;
  total.skipped += counts.skipped;
  total.todo += counts.todo;
}
// One line over every phase, last, for whoever reads the run (CI does). Todo tests (known open
// problems, still run) are counted apart: node counts them neither as passed nor as failed.
const extra = [total.skipped > 0 ? `${total.skipped} skipped` : '', total.todo > 0 ? `${total.todo} todo` : '']
  .filter((part) => part !== '').map((part) => `, ${part}`).join('');
console.log(`${total.pass} passed, ${total.fail} failed${extra}`);
process.exit(status === 0 && total.fail > 0 ? 1 : status);
