/**
 * At most one master at any true time: every interval in which a node believes it holds a group's
 * master lease (from the moment a winning bid gives it the lease to the lease's end, converted from
 * its local clock to true time) must not overlap another node's. A drop or a crash ends a node's
 * belief at once; a pause does not (a paused master still believes, and must not act after its
 * lease).
 */
import type { Violations } from './checkers.js';

interface Hold {
  start: number;
  end: number;
}

export class MasterLeaseChecker {
  private readonly violations: Violations;
  /** group → node → its latest hold. */
  private readonly holds = new Map<number, Map<number, Hold>>();
  private readonly lastHolder = new Map<number, number>();
  /** Times the lease went to a different node than the one that held it before. */
  masterChanges = 0;

  constructor(violations: Violations) {
    this.violations = violations;
  }

  /** Node `node` believes it holds group `groupIndex`'s lease over [start, end] (true time). */
  hold(groupIndex: number, node: number, start: number, end: number): void {
    if (end <= start) return;
    const group = this.groupHolds(groupIndex);
    for (const [other, hold] of group) {
      if (other === node || hold.end <= start || end <= hold.start) continue;
      this.violations.add(`group ${groupIndex}: nodes ${other} and ${node} both believed they held the master ` +
        `lease at true time ${Math.max(start, hold.start).toFixed(3)} ms (node ${other} until ` +
        `${hold.end.toFixed(3)}, node ${node} from ${start.toFixed(3)})`);
    }
    const own = group.get(node);
    if (own !== undefined && own.end >= start) own.end = Math.max(own.end, end);
    else group.set(node, { start, end });
    if (this.lastHolder.get(groupIndex) !== node) {
      this.masterChanges++;
      this.lastHolder.set(groupIndex, node);
    }
  }

  /** The node stopped believing (a drop, or its process died) at true time `at`. */
  release(groupIndex: number, node: number, at: number): void {
    const hold = this.holds.get(groupIndex)?.get(node);
    if (hold !== undefined) hold.end = Math.min(hold.end, at);
  }

  releaseAll(node: number, at: number): void {
    for (const groupIndex of this.holds.keys()) this.release(groupIndex, node, at);
  }

  private groupHolds(groupIndex: number): Map<number, Hold> {
    let group = this.holds.get(groupIndex);
    if (group === undefined) {
      group = new Map();
      this.holds.set(groupIndex, group);
    }
    return group;
  }
}
