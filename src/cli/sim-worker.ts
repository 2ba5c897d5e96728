/** A worker thread of `multipaxos sim`: runs the seeds it is given and posts each result back. */
import { parentPort, workerData } from 'node:worker_threads';
import { runSeed, type CanaryName } from '../testing/sim/simulator.js';

interface WorkerInput {
  readonly seeds: readonly number[];
  readonly canary: CanaryName | undefined;
  readonly stopOnFailure: boolean;
}

const input = workerData as WorkerInput;
for (const seed of input.seeds) {
  const result = await runSeed({ seed, canary: input.canary });
  parentPort?.postMessage({ ...result, trace: [] });
  if (!result.ok && input.stopOnFailure) break;
}
