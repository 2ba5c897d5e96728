import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../../bench/main.js', import.meta.url));

test('catch-up bench, gap part: a run and its summary as JSON, with positive rates', () => {
  const run = spawnSync(process.execPath, [BENCH, 'catch-up', '--part', 'gap', '--instances', '3000', '--runs', '1',
    '--writers', '4', '--json'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(lines.length, 2, run.stdout);
  const [result, summary] = lines as [Record<string, unknown>, Record<string, unknown>];
  assert.equal(result.part, 'gap');
  assert.ok((result.instances as number) >= 3000, `learned ${String(result.instances)}`);
  for (const field of ['instancesPerSec', 'mbPerSec', 'toCaughtUpMs', 'writersAlonePerSec', 'writersDuringPerSec']) {
    assert.ok(typeof result[field] === 'number' && (result[field] as number) > 0, `${field}: ${JSON.stringify(result)}`);
  }
  assert.equal(summary.part, 'gap');
  assert.equal(summary.runs, 1);
  assert.equal(summary.medianInstancesPerSec, result.instancesPerSec);
});
