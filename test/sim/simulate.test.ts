// simulate(): an embedder's state machines under the simulator's faults, checked by the library and by
// their own check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CounterStateMachine } from '../../examples/counter/counter-state-machine.js';
import type { ExecuteInput, StateMachine } from '../../src/index.js';
import { simulate, type SimulatedCluster, type SimulatedNode } from '../../src/testing/index.js';

const SEEDS = { from: 1, count: 6 };

function countsMatchChosen(nodes: readonly SimulatedNode<CounterStateMachine>[], cluster: SimulatedCluster): void {
  for (let groupIndex = 0; groupIndex < cluster.groupCount; groupIndex++) {
    for (const node of nodes) {
      const [counter] = node.stateMachines(groupIndex);
      const increments = cluster.chosen(groupIndex, node.nowInstanceId(groupIndex)).length;
      assert.equal(counter?.count(groupIndex), increments, `node ${node.id} group ${groupIndex}`);
    }
  }
}

test('a correct state machine passes every seed, and the check sees every node caught up', async () => {
  let checked = 0;
  const report = await simulate({
    stateMachines: () => [new CounterStateMachine()],
    seeds: SEEDS,
    workload: () => 'increment',
    check: (nodes, cluster) => {
      checked++;
      assert.ok(nodes.length >= 3);
      countsMatchChosen(nodes, cluster);
    },
  });
  assert.ok(report.ok, JSON.stringify(report.failures));
  assert.equal(report.seeds, SEEDS.count);
  assert.equal(checked, SEEDS.count);
  for (const run of report.runs) {
    assert.ok(run.proposals.acknowledged > 0 && run.crashes > 0, `seed ${run.seed} did something`);
  }
});

// Keeps its count in a module-level map by node, as a singleton would: a restarted process then
// replays the log on top of what the crashed one counted.
const survivingCounts = new Map<number, number>();
class CrashSurvivingCounter implements StateMachine {
  readonly id = 1;
  constructor(private readonly nodeId: number) {}

  execute(): number {
    const count = (survivingCounts.get(this.nodeId) ?? 0) + 1;
    survivingCounts.set(this.nodeId, count);
    return count;
  }
}

test('state that survives a crash is caught: the seed fails with a replay hint', async () => {
  const report = await simulate({
    stateMachines: (_groupIndex, process) => [new CrashSurvivingCounter(process.id)],
    seeds: [1, 2],
    workload: () => 'increment',
  });
  assert.equal(report.ok, false);
  const [failure] = report.failures;
  assert.ok(failure !== undefined);
  assert.match(failure.violations.join('\n'), /not deterministic/);
  assert.equal(failure.replay, `simulate({ ...yourOptions, seeds: [${failure.seed}], trace: true })`);
});

test('a state machine that throws on its own is reported with its error, not retried forever', async () => {
  const report = await simulate({
    stateMachines: () => [new CounterStateMachine()],
    seeds: [3],
    workload: (random) => (random.chance(0.02) ? 'decrement' : 'increment'),
  });
  assert.equal(report.ok, false);
  assert.match(report.failures[0]?.violations[0] ?? '', /state machine 1 threw executing instance \d+: unknown counter command "decrement"/);
});

test("the user's check fails the seed with its message", async () => {
  const report = await simulate({
    stateMachines: () => [new CounterStateMachine()],
    seeds: [4],
    workload: () => 'increment',
    check: () => {
      throw new Error('not today');
    },
  });
  assert.deepEqual(report.failures.map((failure) => failure.violations), [['check failed: not today']]);
});

test('the same options and seed give the same run; the replay keeps the trace', async () => {
  const options = {
    stateMachines: () => [new CounterStateMachine()], workload: () => 'increment', seeds: [7], trace: true,
  };
  const [first] = (await simulate(options)).runs;
  const [second] = (await simulate(options)).runs;
  assert.equal(first?.traceHash, second?.traceHash);
  assert.deepEqual(first?.trace, second?.trace);
  assert.ok((first?.trace.length ?? 0) > 100, 'the trace records the run');
  const [other] = (await simulate({ ...options, seeds: [8], trace: false })).runs;
  assert.notEqual(other?.traceHash, first?.traceHash);
  assert.deepEqual(other?.trace, []);
});

class Register implements StateMachine {
  value = '';
  constructor(readonly id: number) {}

  execute({ value }: ExecuteInput): string {
    this.value = Buffer.from(value).toString('utf8');
    return this.value;
  }
}

test('with several state machines per group, the workload names one', async () => {
  const report = await simulate({
    stateMachines: () => [new Register(1), new Register(2)],
    seeds: [5],
    workload: (random, { nodeId }) => ({ stateMachineId: random.pick([1, 2]), value: `from ${nodeId}` }),
    check: (nodes, cluster) => {
      for (let groupIndex = 0; groupIndex < cluster.groupCount; groupIndex++) {
        for (const node of nodes) {
          const chosen = cluster.chosen(groupIndex, node.nowInstanceId(groupIndex));
          for (const register of node.stateMachines(groupIndex)) {
            const last = chosen.filter((value) => value.stateMachineId === register.id).at(-1);
            assert.equal(register.value, last === undefined ? '' : Buffer.from(last.value).toString('utf8'));
          }
        }
      }
    },
  });
  assert.ok(report.ok, JSON.stringify(report.failures));
  await assert.rejects(simulate({ stateMachines: () => [new Register(1), new Register(2)], seeds: [5],
    workload: () => 'unnamed' }), /must name one/);
  await assert.rejects(simulate({ stateMachines: () => [], seeds: [-1], workload: () => 'x' }), /seeds must be/);
});
