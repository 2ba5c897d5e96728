/**
 * Checkpoints change how a node gets to its state: by executing the log, or by taking a snapshot
 * (its own at start-up, or a peer's, installed). This checker proves both roads lead to the same
 * place. Every snapshot-capable state machine reports its state (values executed, CRC chain over
 * them) after each execution; the first report of the k-th value of a (group, state machine)
 * anywhere is canonical, and every later one, on any node and in any life, must equal it, at the
 * same instance. A state taken from a snapshot at instance C must be a canonical state whose last
 * value is at or below C, with the next canonical value above C: exactly the values up to C.
 */
import type { StateMachine } from '../../runtime/interfaces.js';
import type { Violations } from './checkers.js';
import { DigestStateMachine } from './digest-state-machine.js';
import type { MachineSnapshot } from './snapshot-shelf.js';

interface Canonical {
  readonly instanceId: number;
  readonly digest: number;
}

export class StateDigestChecker {
  private readonly violations: Violations;
  /** (group, machine, count) → the state after the count-th value, as first executed anywhere. */
  private readonly canonical = new Map<string, Canonical>();
  /** (group, machine, count) → the highest instance a restored snapshot with that count covers. */
  private readonly claims = new Map<string, number>();
  /** States taken from snapshots and checked, by how. */
  restoredAtStart = 0;
  installed = 0;
  /** Executions compared with an earlier one of the same value (on another node or life). */
  compared = 0;
  /** Final states compared between nodes standing at the same instance. */
  finalCompared = 0;

  constructor(violations: Violations) {
    this.violations = violations;
  }

  fail(message: string): void {
    this.violations.add(message);
  }

  executed(where: string, groupIndex: number, machineId: number, instanceId: number, state: MachineSnapshot): void {
    const id = key(groupIndex, machineId, state.count);
    const canonical = this.canonical.get(id);
    if (canonical === undefined) {
      this.canonical.set(id, { instanceId, digest: state.digest });
      const claim = this.claims.get(key(groupIndex, machineId, state.count - 1));
      if (claim !== undefined && instanceId <= claim) {
        this.violations.add(`group ${groupIndex} state machine ${machineId}: value ${state.count} executed at ` +
          `instance ${instanceId}, but a snapshot covering instance ${claim} held only ${state.count - 1} values`);
      }
      return;
    }
    this.compared++;
    if (canonical.instanceId !== instanceId || canonical.digest !== state.digest) {
      this.violations.add(`${where} state machine ${machineId}: after ${state.count} values (instance ${instanceId}) ` +
        `its state differs from another node's (instance ${canonical.instanceId}): not the same values in order`);
    }
  }

  restored(where: string, groupIndex: number, machineId: number, snapshot: MachineSnapshot,
    how: 'start' | 'install'): void {
    if (how === 'start') this.restoredAtStart++;
    else this.installed++;
    const { count, instanceId } = snapshot;
    const label = `${where} state machine ${machineId} ${how === 'start' ? 'started from' : 'installed'} a ` +
      `snapshot at instance ${instanceId} (${count} values)`;
    if (count > 0) {
      const canonical = this.canonical.get(key(groupIndex, machineId, count));
      if (canonical === undefined) {
        this.violations.add(`${label}, but no node ever executed that many`);
        return;
      }
      if (canonical.digest !== snapshot.digest || canonical.instanceId > instanceId) {
        this.violations.add(`${label} whose state is not the one executing the log gives`);
        return;
      }
    }
    const next = this.canonical.get(key(groupIndex, machineId, count + 1));
    if (next !== undefined && next.instanceId <= instanceId) {
      this.violations.add(`${label}, which misses the value executed at instance ${next.instanceId}`);
      return;
    }
    const claimId = key(groupIndex, machineId, count);
    this.claims.set(claimId, Math.max(this.claims.get(claimId) ?? -1, instanceId));
  }
}

function key(...parts: number[]): string {
  return parts.join(':');
}

/** What the final comparison needs of a node. */
export interface NodeWithStates {
  readonly id: number;
  nowInstanceId(groupIndex: number): number | undefined;
  stateMachinesOf(groupIndex: number): readonly StateMachine[];
}

/**
 * At the end, with every node caught up: nodes at the same instance of a group must hold equal
 * states in every snapshot-capable state machine, however each got there.
 */
export function compareFinalStates(nodes: readonly NodeWithStates[], groupCount: number,
  checker: StateDigestChecker): void {
  for (let groupIndex = 0; groupIndex < groupCount; groupIndex++) {
    const seen = new Map<string, { node: number; count: number; digest: number }>();
    for (const node of nodes) {
      const at = node.nowInstanceId(groupIndex);
      if (at === undefined) continue;
      for (const machine of node.stateMachinesOf(groupIndex)) {
        if (!(machine instanceof DigestStateMachine)) continue;
        const { count, digest } = machine.state;
        const id = `${at}:${machine.id}`;
        const first = seen.get(id);
        if (first === undefined) {
          seen.set(id, { node: node.id, count, digest });
          continue;
        }
        checker.finalCompared++;
        if (first.count !== count || first.digest !== digest) {
          checker.fail(`group ${groupIndex} state machine ${machine.id}: nodes ${first.node} and ${node.id} both stand ` +
            `at instance ${at} with different states (${first.count} and ${count} values)`);
        }
      }
    }
  }
}
