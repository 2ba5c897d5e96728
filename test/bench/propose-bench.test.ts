import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../../bench/main.js', import.meta.url));

test('propose bench runs real nodes and prints one JSON line with positive numbers', () => {
  const run = spawnSync(process.execPath, [BENCH, 'propose', '--groups', '2', '--concurrency', '8', '--seconds', '1'],
    { encoding: 'utf8', timeout: 90_000 });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  assert.equal(lines.length, 1, run.stdout);
  const result = JSON.parse(lines[0] as string) as Record<string, unknown>;
  assert.equal(result.nodes, 3);
  assert.equal(result.groups, 2);
  assert.equal(result.concurrency, 8);
  assert.equal(result.valueBytes, 100);
  assert.equal(result.sync, true);
  for (const field of ['proposalsPerSec', 'p50Ms', 'p99Ms', 'completed', 'instances']) {
    assert.ok(typeof result[field] === 'number' && (result[field] as number) > 0, `${field}: ${JSON.stringify(result)}`);
  }
  assert.equal(result.errors, 0);
  assert.ok((result.p50Ms as number) <= (result.p99Ms as number));
});

test('propose bench --compare alternates another build\'s nodes with this one\'s and prints both medians', () => {
  // This build's own dist directory stands in for the other build: what is checked is the plumbing.
  const dist = fileURLToPath(new URL('../..', import.meta.url));
  const run = spawnSync(process.execPath, [BENCH, 'propose', '--concurrency', '4', '--seconds', '1', '--runs', '1',
    '--compare', dist, '--json'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(lines.length, 4, run.stdout);
  const [mine, other, mySummary, otherSummary] = lines as [Record<string, unknown>, Record<string, unknown>,
    Record<string, unknown>, Record<string, unknown>];
  assert.equal(mine.build, undefined);
  assert.equal(other.build, dist.replace(/\/$/, ''));
  for (const result of [mine, other]) {
    assert.ok((result.proposalsPerSec as number) > 0 && result.errors === 0, JSON.stringify(result));
    assert.equal(typeof result.load, 'number');
  }
  assert.deepEqual([mySummary.build, mySummary.runs, mySummary.proposalsPerSec], ['this build', 1, mine.proposalsPerSec]);
  assert.deepEqual([otherSummary.build, otherSummary.runs, otherSummary.proposalsPerSec],
    [other.build, 1, other.proposalsPerSec]);
});
