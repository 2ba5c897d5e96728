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
import { DigestStateMachine, type SnapshotHost } from './digest-state-machine.js';
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
  /**
   * A fresh set of state machines for one group of one process life (they start empty). With
   * checkpoints on, `snapshots` is where they keep durable snapshots (and they start from them).
   */
  stateMachines(groupIndex: number, process: SimProcess, snapshots?: SnapshotHost): readonly StateMachine[];
  /**
   * The next value a client of `node` proposes to a group. `random` is the workload's stream;
   * `label` is 'v' for the load and 'probe' for the liveness probe.
   */
  nextProposal(random: SeededRandom, node: SimNode, groupIndex: number, label: string, sequence: number): SimProposal;
  /** Its state machines keep snapshots when given a SnapshotHost (runs may then enable checkpoints). */
  readonly keepsSnapshots?: boolean;
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
 * over and over from every node, each to one of two echo state machines (with checkpoints on,
 * echo machines that keep snapshots: digest-state-machine.ts).
 */
export function builtInApplication(distinctValues: number | null): SimApplication {
  return {
    keepsSnapshots: true,
    stateMachines: (groupIndex, _process, snapshots) => BUILT_IN_STATE_MACHINE_IDS.map((id) => (
      snapshots === undefined ? {
        id,
        execute: ({ value }: { value: Uint8Array }) => Buffer.from(value).toString('latin1'),
      } : new DigestStateMachine(id, groupIndex, snapshots))),
    nextProposal: (random, node, groupIndex, label, sequence) => {
      // The draws come in this order since the first seeds were recorded: keep it, or traces change.
      const stateMachineId = random.pick(BUILT_IN_STATE_MACHINE_IDS);
      const payload = utf8(distinctValues === null ? `${label}${sequence}@n${node.id}g${groupIndex}`
        : `${label}${random.int(0, distinctValues)}`);
      return { stateMachineId, payload };
    },
  };
}
