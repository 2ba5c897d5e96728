/**
 * Seeds that once failed, with what they found. Every one is re-run on every test run.
 * Add the seed (and the canary, if any) whenever the simulator finds something.
 */
export interface RegressionSeed {
  readonly seed: number;
  readonly found: string;
}

export const REGRESSION_SEEDS: readonly RegressionSeed[] = [
  { seed: 2, found: 'a crash-mid-write trap armed during the fault phase fired after healing and left a node down' },
  { seed: 19, found: 'same as seed 2, with three nodes' },
  { seed: 73, found: 'same as seed 2, with a single proposing client' },
  { seed: 5298, found: 'a proposal whose value was chosen but still executing past its timeout kept its ' +
    'timeout as the next timer, so the node woke up forever at the same instant' },
  { seed: 5806, found: 'same as seed 5298' },
];
