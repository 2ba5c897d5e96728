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

test('propose bench --compare alternates another build\'s nodes with this one\'s (order flipped each round) and '
  + 'prints the machine, both medians and the ratio', () => {
  // This build's own dist directory stands in for the other build: what is checked is the plumbing.
  const dist = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
  const run = spawnSync(process.execPath, [BENCH, 'propose', '--concurrency', '4', '--seconds', '1', '--runs', '2',
    '--compare', dist, '--json'], { encoding: 'utf8', timeout: 180_000 });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.equal(lines.length, 8, run.stdout);
  const [machine, first, second, third, fourth, mySummary, otherSummary, ratioLine] =
    lines as Record<string, unknown>[];
  assert.match(String(machine?.machine), /GiB, Node v\d+/);
  // ABBA: this build, the other; then the other, this build.
  assert.deepEqual([first, second, third, fourth].map((result) => result?.build), [undefined, dist, dist, undefined]);
  for (const result of [first, second, third, fourth] as Record<string, unknown>[]) {
    assert.ok((result.proposalsPerSec as number) > 0 && result.errors === 0, JSON.stringify(result));
    assert.equal(typeof result.load, 'number');
  }
  assert.deepEqual([mySummary?.build, mySummary?.runs], ['this build', 2]);
  assert.deepEqual([otherSummary?.build, otherSummary?.runs], [dist, 2]);
  const ratio = ratioLine?.ratio as { against: string; lowest: number; highest: number };
  assert.equal(ratio.against, dist);
  const roundRatios = [(first?.proposalsPerSec as number) / (second?.proposalsPerSec as number),
    (fourth?.proposalsPerSec as number) / (third?.proposalsPerSec as number)];
  assert.equal(ratio.lowest, Math.round(Math.min(...roundRatios) * 100) / 100);
  assert.equal(ratio.highest, Math.round(Math.max(...roundRatios) * 100) / 100);
});

test('propose bench refuses --runs with --tls or --matrix, and --cpu-prof with --compare, before starting nodes', () => {
  const cases: [string[], RegExp][] = [
    [['--runs', '2', '--tls'], /--runs and --compare .* not with --tls or --matrix/],
    [['--runs', '2', '--matrix'], /not with --tls or --matrix/],
    [['--compare', '/nowhere', '--tls'], /not with --tls or --matrix/],
    [['--compare', '/nowhere', '--cpu-prof', '/tmp/x'], /--cpu-prof with --compare/],
  ];
  for (const [flags, message] of cases) {
    const run = spawnSync(process.execPath, [BENCH, 'propose', ...flags], { encoding: 'utf8', timeout: 30_000 });
    assert.notEqual(run.status, 0, flags.join(' '));
    assert.match(run.stderr, message, flags.join(' '));
    assert.equal(run.stdout, '', 'nothing ran');
  }
});
