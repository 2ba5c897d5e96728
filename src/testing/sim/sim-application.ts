/**
 * What a simulated cluster runs and what its clients propose. The simulator's own run uses two
 * echo state machines per group (each returns its payload, so a caller can tell it got its own
 * entry's result); `simulate()` plugs in an embedder's state machines and values instead. The rest
 * of a run (faults, checkers, liveness) is the same for both.
 */
import type { StateMachine } from '../../runtime/interfaces.js';
import { utf8 } from '../../util/bytes.js';
import type { SeededRandom } from '../../util/random.js';
import type { AgreementChecker } from './checkers.js';
import type { SimNode } from './sim-node.js';

/** One process life of one node, as the state machine factory sees it. */
export interface SimProcess {
  readonly id: number;
  readonly life: number;
}

export interface SimProposal {
  readonly stateMachineId: number;
  readonly payload: Uint8Array;
}

export interface SimApplication {
  /** A fresh set of state machines for one group of one process life (they start empty). */
  stateMachines(groupIndex: number, process: SimProcess): readonly StateMachine[];
  /**
   * The next value a client of `node` proposes to a group. `random` is the workload's stream;
   * `label` is 'v' for the load and 'probe' for the liveness probe.
   */
  nextProposal(random: SeededRandom, node: SimNode, groupIndex: number, label: string, sequence: number): SimProposal;
  /**
   * After the liveness phase, when nothing failed before: a last invariant over the nodes (all up
   * and caught up). Returns a violation, or undefined.
   */
  finalCheck?(nodes: readonly SimNode[], agreement: AgreementChecker): Promise<string | undefined>;
}

/** The two state machines every group of the simulator's own run has. */
const BUILT_IN_STATE_MACHINE_IDS = [1, 2] as const;

/**
 * The simulator's own application: unique payloads, or (`distinctValues` set) a handful proposed
 * over and over from every node, each to one of two echo state machines.
 */
export function builtInApplication(distinctValues: number | null): SimApplication {
  return {
    stateMachines: () => BUILT_IN_STATE_MACHINE_IDS.map((id) => ({
      id,
      execute: ({ value }) => Buffer.from(value).toString('latin1'),
    })),
    nextProposal: (random, node, groupIndex, label, sequence) => {
      // The draws come in this order since the first seeds were recorded: keep it, or traces change.
      const stateMachineId = random.pick(BUILT_IN_STATE_MACHINE_IDS);
      const payload = utf8(distinctValues === null ? `${label}${sequence}@n${node.id}g${groupIndex}`
        : `${label}${random.int(0, distinctValues)}`);
      return { stateMachineId, payload };
    },
  };
}
