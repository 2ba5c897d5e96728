/**
 * `simulate()`: an embedder's own state machines under the simulator's faults. Each seed runs the
 * same simulation as `npm run sim` (cluster, faults, checkers, liveness phase), with the
 * embedder's state machines in every node's process lives and their values proposed by the
 * clients; then their own `check`. Seeds run one after another in this process, since the state
 * machines are code here.
 */
import type { StateMachine } from '../../runtime/interfaces.js';
import type { SimProcess } from './sim-application.js';
import { runSimulation } from './simulator.js';
import { userApplication } from './user-application.js';

/** The seeded randomness a workload draws from (never use Math.random in a simulation). */
export interface SimRandom {
  /** A uniformly distributed integer in [min, max). */
  int(min: number, max: number): number;
  /** A uniformly distributed float in [0, 1). */
  float(): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
}

/** A value to propose: to the group's only state machine, or to the one named. */
export type SimValue = string | Uint8Array | { readonly stateMachineId: number; readonly value: string | Uint8Array };

/** Where a value is about to be proposed. */
export interface SimProposalPlace {
  readonly nodeId: number;
  readonly groupIndex: number;
}

/** A node that is up at the end of a seed, for `check`. */
export interface SimulatedNode<M extends StateMachine> {
  readonly id: number;
  /** Its process life: 1 at the first start, one more at every restart. */
  readonly life: number;
  /** The state machines this life made for a group (as `stateMachines` returned them). */
  stateMachines(groupIndex: number): readonly M[];
  /** Every instance below this one is executed on this node (the state machines saw it). */
  nowInstanceId(groupIndex: number): number;
}

/** One value the cluster chose, as a state machine executes it. */
export interface ChosenValue {
  readonly instanceId: number;
  readonly stateMachineId: number;
  readonly value: Uint8Array;
}

/** What the cluster chose, for `check`. */
export interface SimulatedCluster {
  readonly groupCount: number;
  /** The values chosen in a group, in order, at instances below `belowInstanceId` (default: all). */
  chosen(groupIndex: number, belowInstanceId?: number): readonly ChosenValue[];
}

export interface SimulateOptions<M extends StateMachine = StateMachine> {
  /**
   * A fresh set of state machines for one group of one node's process life, as PaxosNode's
   * `stateMachines` option. A crash loses them: the next life replays the log into new ones.
   * They must be deterministic: no Math.random, Date, timers or I/O; state only in the instances.
   */
  readonly stateMachines: (groupIndex: number, process: SimProcess) => readonly M[];
  /** Which seeds: a range, or a list (to replay one). */
  readonly seeds: { readonly from: number; readonly count: number } | readonly number[];
  /** The next value a client proposes, drawn from `random` (seeded by the seed). */
  readonly workload: (random: SimRandom, where: SimProposalPlace) => SimValue;
  /**
   * Your invariant, after each seed's faults have healed and every node has caught up: throw (or
   * reject) to fail the seed. Not called for a seed that already failed.
   */
  readonly check?: (nodes: readonly SimulatedNode<M>[], cluster: SimulatedCluster) => void | Promise<void>;
  /** Keep each seed's event trace in its run. */
  readonly trace?: boolean;
  /** Called after each seed, e.g. for progress. */
  readonly onSeed?: (run: SimulateRun) => void;
}

export interface SimulateRun {
  readonly seed: number;
  readonly ok: boolean;
  readonly violations: readonly string[];
  /** The cluster and fault mix the seed chose. */
  readonly config: string;
  readonly instancesChosen: number;
  readonly proposals: { readonly issued: number; readonly acknowledged: number };
  readonly crashes: number;
  readonly partitions: number;
  readonly simulatedMs: number;
  /** Equal for two runs of one seed with the same options. */
  readonly traceHash: string;
  /** The event trace, when `trace` was set. */
  readonly trace: readonly string[];
}

export interface SimulateFailure {
  readonly seed: number;
  readonly violations: readonly string[];
  /** How to replay the seed with its trace. */
  readonly replay: string;
}

export interface SimulateReport {
  readonly ok: boolean;
  readonly seeds: number;
  readonly failures: readonly SimulateFailure[];
  readonly runs: readonly SimulateRun[];
}

export async function simulate<M extends StateMachine>(options: SimulateOptions<M>): Promise<SimulateReport> {
  validate(options);
  const runs: SimulateRun[] = [];
  for (const seed of seedList(options.seeds)) {
    const result = await runSimulation({ seed, trace: options.trace === true, replay: replayOf(seed) },
      (config) => userApplication(options, seed, config.groupCount));
    const run: SimulateRun = {
      seed, ok: result.ok, violations: result.violations, config: result.config,
      instancesChosen: result.instancesChosen,
      proposals: { issued: result.workload.issued, acknowledged: result.workload.chosen },
      crashes: result.faults.crashes, partitions: result.faults.partitions, simulatedMs: result.simulatedMs,
      traceHash: result.traceHash, trace: result.trace,
    };
    runs.push(run);
    options.onSeed?.(run);
  }
  const failures = runs.filter((run) => !run.ok).map((run) => ({
    seed: run.seed, violations: run.violations,
    replay: replayOf(run.seed),
  }));
  return { ok: failures.length === 0, seeds: runs.length, failures, runs };
}

/** How an embedder replays one seed with its trace. */
function replayOf(seed: number): string {
  return `simulate({ ...yourOptions, seeds: [${seed}], trace: true })`;
}

function seedList(seeds: SimulateOptions['seeds']): readonly number[] {
  if (isSeedList(seeds)) return seeds;
  return Array.from({ length: seeds.count }, (_, index) => seeds.from + index);
}

function isSeedList(seeds: SimulateOptions['seeds']): seeds is readonly number[] {
  return Array.isArray(seeds);
}

function validate<M extends StateMachine>(options: SimulateOptions<M>): void {
  if (typeof options.stateMachines !== 'function') throw new TypeError('stateMachines must be a function');
  if (typeof options.workload !== 'function') throw new TypeError('workload must be a function');
  if (options.check !== undefined && typeof options.check !== 'function') throw new TypeError('check must be a function');
  const { seeds } = options;
  const list = isSeedList(seeds) ? seeds : [seeds.from, seeds.count];
  if (!list.every((seed) => Number.isSafeInteger(seed) && seed >= 0)) {
    throw new RangeError('seeds must be { from, count } or a list of non-negative integers');
  }
}
