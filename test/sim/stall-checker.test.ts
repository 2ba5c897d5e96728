import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TIMING } from '../../src/core/config.js';
import { Violations } from '../../src/testing/sim/checkers.js';
import { STALL_GRACE_MS, StallChecker, stallBoundMs, type StallProbe } from '../../src/testing/sim/stall-checker.js';
import { runSeed } from '../../src/testing/sim/simulator.js';

/** A cluster the test sets by hand: who is healthy, which links are cut, where proposals wait. */
class FakeCluster implements StallProbe {
  memberIds = [1, 2, 3];
  readonly down = new Set<number>();
  readonly cut = new Set<string>();
  readonly waitingAt = new Set<number>();
  readonly positions = new Map<number, number>();

  members(): readonly number[] {
    return this.memberIds;
  }

  healthy(nodeId: number): boolean {
    return !this.down.has(nodeId);
  }

  position(nodeId: number): number | undefined {
    return this.down.has(nodeId) ? undefined : this.positions.get(nodeId) ?? 0;
  }

  linked(from: number, to: number): boolean {
    return !this.cut.has(`${from}>${to}`);
  }

  waiting(nodeId: number): boolean {
    return this.waitingAt.has(nodeId);
  }

  isolate(id: number): void {
    for (const other of this.memberIds) {
      if (other === id) continue;
      this.cut.add(`${id}>${other}`);
      this.cut.add(`${other}>${id}`);
    }
  }
}

const BOUND = 1_000;

function checker(cluster: FakeCluster): { stalls: StallChecker; violations: Violations } {
  const violations = new Violations();
  const stalls = new StallChecker({
    groupCount: 1, boundMs: BOUND, probe: cluster, violations, replay: 'npm run sim -- --seed 7 --trace',
  });
  return { stalls, violations };
}

/** Observe every 10 ms over [from, to). */
function run(stalls: StallChecker, from: number, to: number): void {
  for (let now = from; now < to; now += 10) stalls.observe(now);
}

test('stall: a healthy majority with a proposal waiting that decides nothing past the bound is flagged, with the replay', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  cluster.waitingAt.add(2);
  run(stalls, 0, 500);
  stalls.decided(0, 0, 500);
  run(stalls, 500, 1_400);
  assert.equal(violations.any, false, 'within the bound of the last decision');
  run(stalls, 1_400, 1_600);
  assert.equal(violations.list.length, 1);
  assert.match(violations.list[0] ?? '', /stall: group 0 decided nothing for 10\d\d ms \(bound 1000 ms\) from 500 ms/);
  assert.match(violations.list[0] ?? '', /nodes \{1,2,3\}/);
  assert.match(violations.list[0] ?? '', /replay: npm run sim -- --seed 7 --trace/);
  assert.ok((stalls.longest?.ms ?? 0) > BOUND);
  run(stalls, 1_600, 3_000);
  assert.equal(violations.list.length, 1, 'one wait is reported once');
});

test('stall: a group that keeps deciding is not flagged, and its longest wait is recorded', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  cluster.waitingAt.add(1);
  let instance = 0;
  for (let now = 0; now < 10_000; now += 10) {
    if (now % 700 === 0) stalls.decided(0, instance++, now);
    stalls.observe(now);
  }
  assert.equal(violations.any, false);
  assert.equal(stalls.longest?.ms, 700, 'measured up to each decision');
});

test('stall: no wait counts without a proposal waiting in the core', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  run(stalls, 0, 5_000);
  assert.equal(violations.any, false, 'nothing to decide');
  assert.equal(stalls.longest, null);
  // A proposal waiting at a node cut off from the majority is not the majority's to decide.
  cluster.isolate(3);
  cluster.waitingAt.add(3);
  run(stalls, 5_000, 10_000);
  assert.equal(violations.any, false);
  assert.equal(stalls.longest, null);
});

test('stall: no wait counts while no majority is up and connected; the clock starts when one is', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  cluster.waitingAt.add(1);
  cluster.down.add(2);
  cluster.isolate(3);
  run(stalls, 0, 5_000);
  assert.equal(violations.any, false, 'a minority cannot decide');
  cluster.cut.clear();
  run(stalls, 5_000, 5_900);
  assert.equal(violations.any, false, 'within the bound of the heal');
  run(stalls, 5_900, 6_200);
  assert.match(violations.list[0] ?? '', /from 5000 ms/);
});

test('stall: a one-way cut breaks the majority; a member outside the core failing does not restart the clock', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  cluster.waitingAt.add(1);
  cluster.cut.add('1>2');
  cluster.cut.add('3>1');
  run(stalls, 0, 5_000);
  assert.equal(violations.any, false, 'no two members hear each other both ways');
  cluster.cut.clear();
  cluster.isolate(3);
  run(stalls, 5_000, 5_500);
  // Node 3 is already cut off: its crash changes nothing for {1,2}.
  cluster.down.add(3);
  run(stalls, 5_500, 6_200);
  assert.match(violations.list[0] ?? '', /from 5000 ms, while nodes \{1,2\}/);
});

test('stall: a member catching up from two or more instances behind is left out (a long log, a checkpoint)', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  cluster.waitingAt.add(1);
  cluster.down.add(3);
  cluster.positions.set(1, 40);
  cluster.positions.set(2, 5);
  stalls.decided(0, 39, 0);
  run(stalls, 0, 5_000);
  assert.equal(violations.any, false, 'node 2 catches up from 5: {1} alone is no majority');
  assert.equal(stalls.longest, null);
  // One behind (40 chosen, node 2 at 40 not yet learned) counts: it should learn at once.
  cluster.positions.set(2, 39);
  stalls.decided(0, 40, 5_000);
  cluster.positions.set(2, 40);
  run(stalls, 5_000, 6_200);
  assert.match(violations.list[0] ?? '', /from 5000 ms, while nodes \{1,2\}/);
});

test('stall: a proposal that times out and is replaced does not restart the clock', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  cluster.waitingAt.add(1);
  run(stalls, 0, 600);
  cluster.waitingAt.clear();
  run(stalls, 600, 700);
  cluster.waitingAt.add(2);
  run(stalls, 700, 1_100);
  assert.match(violations.list[0] ?? '', /from 0 ms/);
});

test('stall: the clock stops once nothing has waited for the grace period, and restarts with the next proposal', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  cluster.waitingAt.add(1);
  run(stalls, 0, 110);
  cluster.waitingAt.clear();
  run(stalls, 110, 5_000);
  assert.equal(violations.any, false, 'a proposal waited 100 ms, then nothing waited');
  assert.equal(stalls.longest?.ms, 100, 'the wait ended when the proposal stopped waiting');
  cluster.waitingAt.add(2);
  run(stalls, 5_000, 5_900);
  assert.equal(violations.any, false, 'a new wait, from 5000 ms');
  run(stalls, 5_900, 6_200);
  assert.match(violations.list[0] ?? '', /from 5000 ms/);
  assert.ok(STALL_GRACE_MS < BOUND, 'the grace period is shorter than the bound it serves');
});

test('stall: an instance at or below the highest chosen one seen chosen late is no decision', () => {
  const cluster = new FakeCluster();
  const { stalls, violations } = checker(cluster);
  cluster.waitingAt.add(1);
  for (const id of cluster.memberIds) cluster.positions.set(id, 6);
  stalls.decided(0, 5, 0);
  run(stalls, 0, 600);
  stalls.decided(0, 4, 600);
  stalls.decided(0, 5, 700);
  run(stalls, 600, 1_100);
  assert.match(violations.list[0] ?? '', /from 0 ms/);
});

test('stall: each group has its own clock', () => {
  const cluster = new FakeCluster();
  const violations = new Violations();
  const probe: StallProbe = {
    ...cluster, members: () => cluster.memberIds, healthy: () => true, position: () => 0, linked: () => true,
    waiting: (_, groupIndex) => groupIndex === 1,
  };
  const stalls = new StallChecker({ groupCount: 2, boundMs: BOUND, probe, violations, replay: 'r' });
  for (let now = 0; now < 1_200; now += 10) {
    if (now % 300 === 0) stalls.decided(1, now / 300, now);
    stalls.observe(now);
  }
  assert.equal(violations.any, false, 'group 1 decides; group 0 has nothing waiting');
});

test('stall: the bound follows the timing the nodes run', () => {
  assert.equal(stallBoundMs(DEFAULT_TIMING), 8_000 + 2 * 2_999 + 1_000);
  assert.equal(stallBoundMs({ ...DEFAULT_TIMING, prepareTimeoutMaxMs: 2_000, askForLearnMaxMs: 1_000 }), 5_000);
  // A slow clock's timeouts last longer in true time: 13998 ms of timers at rate 0.9.
  assert.equal(stallBoundMs(DEFAULT_TIMING, 0.9), Math.ceil(13_998 / 0.9) + 1_000);
});

/**
 * The canary that slows catching up (no early asks, periodic asks ten times apart) must be caught
 * by this checker itself, not only by the liveness phase: at least 5 of the first 200 seeds fail
 * with a stall (39 did on 2026-12-05). Each names the replay the run was given (simulate() gives
 * its own; the simulator's command would replay the wrong application).
 */
test('stall: the slow-catch-up canary fails with a stall in at least 5 of the first 200 seeds, naming the given replay', async () => {
  let stalled = 0;
  for (let seed = 1; seed <= 200 && stalled < 5; seed++) {
    const replay = `custom replay of seed ${seed}`;
    const result = await runSeed({ seed, canary: 'slow-catch-up', replay });
    const stalls = result.violations.filter((violation) => violation.startsWith('stall:'));
    if (stalls.length === 0) continue;
    stalled++;
    for (const violation of stalls) assert.ok(violation.endsWith(`replay: ${replay}`), violation);
  }
  assert.ok(stalled >= 5, `only ${stalled} of the first 200 seeds stalled under slow-catch-up`);
});

/**
 * Seed 60 once waited 10.1 s (under the bound, seen in the longest-wait figures): its learner's
 * session lost a message and every sign that it was behind was ignored for the "open" session
 * until the periodic ask. Simulated time, so the figure is the same on any machine.
 */
test('stall: seed 60 no longer waits for a periodic ask behind a dead catch-up session', async () => {
  const run = await runSeed({ seed: 60 });
  assert.ok(run.ok, run.violations.join('; '));
  assert.ok(run.longestStall !== null && run.longestStall.ms < 5_000, `longest wait ${run.longestStall?.ms} ms`);
});
