import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { processTreeCpuMs } from '../../bench/server-cpu.js';

/**
 * A process that burns `ms` of CPU, starts a child that burns as much, and says "ready" once both
 * have; it lives until its stdin closes.
 */
const BURNER = `
const { spawn } = require('node:child_process');
const [depth, ms] = process.argv.slice(1).map(Number);
const start = process.cpuUsage();
while ((process.cpuUsage(start).user + process.cpuUsage(start).system) / 1000 < ms) { /* burn */ }
const ready = () => process.stdout.write('ready\\n');
process.stdin.resume();
if (depth === 0) {
  ready();
  process.stdin.on('end', () => process.exit(0));
} else {
  const child = spawn(process.execPath, ['-e', process.env.BURNER, String(depth - 1), String(ms)],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdout.once('data', ready);
  process.stdin.on('end', () => { child.stdin.end(); child.once('exit', () => process.exit(0)); });
}
`;

test('the CPU of a process and of the process it started, summed; undefined once gone', { skip: !existsSync('/proc/self/stat') }, async () => {
  const burner = spawn(process.execPath, ['-e', BURNER, '1', '200'], {
    stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, BURNER },
  });
  try {
    await once(createInterface({ input: burner.stdout }), 'line');
    const used = processTreeCpuMs(burner.pid);
    assert.ok(used !== undefined, 'readable while running');
    // Each burned 200 ms (ticks of 10 ms may round a little down); one alone would be about 200.
    assert.ok(used >= 350, `the two processes used ${used} ms`);
    const later = processTreeCpuMs(burner.pid);
    assert.ok(later !== undefined && later >= used, 'it never goes down');
  } finally {
    burner.stdin.end();
    await once(burner, 'exit');
  }
  assert.equal(processTreeCpuMs(burner.pid), undefined, 'no process left to read');
  assert.equal(processTreeCpuMs(undefined), undefined);
});
