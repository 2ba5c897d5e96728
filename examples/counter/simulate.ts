/**
 * Simulating your own state machine: the counter under crashes, partitions, message loss and the
 * rest of the simulator's faults, over 50 seeds.
 *   node dist/examples/counter/simulate.js [seeds]
 * The library checks that every node executes the same values in order, that executions agree on
 * their results and that nothing acknowledged is lost; the check below adds the counter's own
 * invariant. In your project, import from 'multipaxos/testing' instead of the relative path.
 */
import { simulate } from '../../src/testing/index.js';
import { CounterStateMachine } from './counter-state-machine.js';

const count = Number(process.argv[2] ?? 50);
const report = await simulate({
  // A fresh counter for every group of every process life: a crash loses it, and the log replays.
  stateMachines: () => [new CounterStateMachine()],
  seeds: { from: 1, count },
  workload: () => 'increment',
  // Every node has executed the instances below its nowInstanceId: its count is the number of
  // increments chosen there.
  check: (nodes, cluster) => {
    for (let groupIndex = 0; groupIndex < cluster.groupCount; groupIndex++) {
      for (const node of nodes) {
        const [counter] = node.stateMachines(groupIndex);
        const increments = cluster.chosen(groupIndex, node.nowInstanceId(groupIndex)).length;
        if (counter?.count(groupIndex) !== increments) {
          throw new Error(`node ${node.id} group ${groupIndex} counts ${counter?.count(groupIndex)} after ` +
            `${increments} increments`);
        }
      }
    }
  },
});

const increments = report.runs.reduce((sum, run) => sum + run.proposals.acknowledged, 0);
console.log(`${report.seeds} seeds: ${report.failures.length} failed; ${increments} acknowledged increments`);
for (const failure of report.failures) {
  console.log(`seed ${failure.seed} FAILED: ${failure.violations[0]}`);
  console.log(`  replay: ${failure.replay}`);
}
process.exitCode = report.ok ? 0 : 1;
