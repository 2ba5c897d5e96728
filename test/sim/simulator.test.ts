import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { runSeed, FREQUENT_CANARIES } from '../../src/testing/sim/simulator.js';
import { REGRESSION_SEEDS } from './regression-seeds.js';

const CLI = new URL('../../src/cli/main.js', import.meta.url).pathname;

function runCli(args: string[]): { status: number | null; summary: Record<string, unknown>; stdout: string } {
  const run = spawnSync(process.execPath, [CLI, 'sim', ...args, '--json'], { encoding: 'utf8', timeout: 8 * 60_000 });
  const lines = run.stdout.trim().split('\n');
  const summary = JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, unknown>;
  return { status: run.status, summary, stdout: run.stdout };
}

test('the same seed gives the same run, event for event', async () => {
  for (const seed of [5, 17, 42]) {
    const first = await runSeed({ seed, trace: true });
    const second = await runSeed({ seed, trace: true });
    assert.equal(first.traceHash, second.traceHash, `seed ${seed}`);
    assert.deepEqual(first.trace, second.trace, `seed ${seed}`);
    assert.equal(first.instancesChosen, second.instancesChosen);
    assert.ok(first.trace.length > 100, 'the trace records the run');
  }
  const other = await runSeed({ seed: 6 });
  const five = await runSeed({ seed: 5 });
  assert.notEqual(other.traceHash, five.traceHash, 'different seeds give different runs');
});

test('every seed has a crash with its restart, a partition, loss, duplication and reordering', async () => {
  let lost = 0;
  let duplicated = 0;
  for (let seed = 100; seed < 120; seed++) {
    const run = await runSeed({ seed });
    assert.ok(run.ok, `seed ${seed}: ${run.violations.join('; ')}`);
    assert.ok(run.faults.crashes >= 1 && run.faults.restarts >= 1, `seed ${seed} crashes`);
    assert.ok(run.faults.partitions >= 1, `seed ${seed} partitions`);
    assert.ok(run.network.lost + run.network.duplicated > 0, `seed ${seed} loss and duplication`);
    assert.ok(run.instancesChosen > 0, `seed ${seed} decided nothing`);
    assert.match(run.config, /loss=0\.0*[1-9]/, 'a loss rate above zero');
    lost += run.network.lost;
    duplicated += run.network.duplicated;
  }
  assert.ok(lost > 100 && duplicated > 100, `lost ${lost}, duplicated ${duplicated}`);
});

// PhxPaxos's "accept for now+1 teaches now" rule on ballot equality alone can learn a value that
// lost its instance. The simulator finds it in about 1 seed in 2,000; this seed is one of them.
test('the simulator catches the ballot-only next-instance shortcut (seed 1813)', async () => {
  const run = await runSeed({ seed: 1813, canary: 'learn-next-by-ballot' });
  assert.ok(!run.ok, 'seed 1813 no longer reaches the bad interleaving; find another with ' +
    'npm run sim -- --seeds 20000 --canary learn-next-by-ballot');
  assert.match(run.violations.join('\n'), /not the chosen one|two different values|diverged/);
  const correct = await runSeed({ seed: 1813 });
  assert.ok(correct.ok, correct.violations.join('; '));
});

test('a third of the seeds run the real FileLogStore over a simulated, power-cut file system, and pass', async () => {
  let found = 0;
  for (let seed = 1; found < 5 && seed < 100; seed++) {
    const run = await runSeed({ seed });
    if (!run.config.includes('storage=file-log')) continue;
    found++;
    assert.ok(run.ok, `seed ${seed}: ${run.violations.join('; ')}`);
    assert.ok(run.instancesChosen > 0 && run.faults.crashes > 0, `seed ${seed} did something`);
  }
  assert.equal(found, 5);
});

test('regression seeds pass', async () => {
  for (const { seed, found } of REGRESSION_SEEDS) {
    const run = await runSeed({ seed });
    assert.ok(run.ok, `seed ${seed} (once found: ${found}): ${run.violations.join('; ')}`);
  }
});

test('300 seeds pass', () => {
  const { status, summary, stdout } = runCli(['--seeds', '300', '--start', '1000']);
  assert.equal(summary.failures, 0, stdout);
  assert.equal(status, 0);
  assert.equal(summary.seeds, 300);
  assert.ok((summary.instancesChosen as number) > 3000, 'the cluster decides thousands of instances');
  assert.ok((summary.crashes as number) >= 300 && (summary.partitions as number) >= 300);
  assert.ok((summary.masterChanges as number) > 100, `master leases change hands: ${String(summary.masterChanges)}`);
  assert.ok((summary.masterDrops as number) > 10, `masters drop their lease: ${String(summary.masterDrops)}`);
  assert.ok((summary.membershipChanges as number) > 50, `memberships change: ${String(summary.membershipChanges)}`);
  const byKind = summary.messagesByKind as Record<string, number>;
  for (const kind of ['learnValue', 'learnValueAck', 'confirmAskForLearn', 'chosen']) {
    assert.ok((byKind[kind] ?? 0) > 0, `catch-up path ${kind} was exercised`);
  }
});

test('a canary run through the CLI stops at a failure, exits with status 1 and prints the replay command', () => {
  const { status, summary, stdout } = runCli(['--seeds', '200', '--canary', 'skip-fsync', '--stop-on-failure']);
  assert.ok((summary.failures as number) >= 1, `canary skip-fsync survived 200 seeds:\n${stdout}`);
  assert.equal(status, 1, 'a failing run exits with status 1');
  assert.match(stdout, /replay: npm run sim -- --seed \d+ --canary/);
});

/**
 * Caught once by luck is not caught: a canary that fails 1 seed in 100 can vanish from the first
 * 200 after any change of timing elsewhere (execute-before-persist did, until its direct check).
 * Each frequent canary must fail at least 5 of the first 200 seeds (the weakest fails about 13%;
 * master-ignores-drift failed 4 before its direct check).
 */
const CANARY_CATCHES = 5;
for (const canary of FREQUENT_CANARIES) {
  test(`canary ${canary} fails at least ${CANARY_CATCHES} of the first 200 seeds`, async () => {
    let failed = 0;
    let seed = 1;
    for (; seed <= 200 && failed < CANARY_CATCHES; seed++) {
      if (!(await runSeed({ seed, canary })).ok) failed++;
    }
    assert.ok(failed >= CANARY_CATCHES, `canary ${canary} failed only ${failed} of the first 200 seeds: ` +
      `too rare to be trusted (npm run sim -- --canary ${canary} --seeds 200)`);
  });
}
