/**
 * At most one master at any true time: every interval in which a node believes it holds a group's
 * master lease (from the moment a winning bid gives it the lease to the lease's end, converted from
 * its local clock to true time) must not overlap another node's. A drop or a crash ends a node's
 * belief at once; a pause does not (a paused master still believes, and must not act after its
 * lease).
 *
 * And, more directly: the lease a winning bid gives its master must end, in true time, no later
 * than the lease every other node takes that same bid (its version) to give, counted from when
 * that node executed it. Otherwise a node whose clock runs fast could elect another master while
 * the first still believes it holds the lease; the overlap itself only shows if leadership happens
 * to move in that window, which few seeds draw.
 */
import type { Violations } from './checkers.js';

interface Hold {
  start: number;
  end: number;
}

/** One master version of one group: its holder's lease end, and the earliest end another node saw. */
interface VersionLease {
  holder?: { readonly node: number; end: number };
  earliestView?: { readonly node: number; readonly end: number };
  /** Said once per version. */
  reported?: boolean;
}

export class MasterLeaseChecker {
  private readonly violations: Violations;
  /** group → node → its latest hold. */
  private readonly holds = new Map<number, Map<number, Hold>>();
  private readonly lastHolder = new Map<number, number>();
  /** group → master version → what its holder and the other nodes believe of its lease. */
  private readonly versions = new Map<number, Map<number, VersionLease>>();
  /** Times the lease went to a different node than the one that held it before. */
  masterChanges = 0;

  constructor(violations: Violations) {
    this.violations = violations;
  }

  /**
   * Node `node` believes it holds group `groupIndex`'s lease over [start, end] (true time), from
   * master version `version` when given.
   */
  hold(groupIndex: number, node: number, start: number, end: number, version?: number): void {
    if (end <= start) return;
    if (version !== undefined) {
      const lease = this.versionLease(groupIndex, version);
      if (lease.holder === undefined || lease.holder.node !== node) lease.holder = { node, end };
      else lease.holder.end = Math.max(lease.holder.end, end);
      this.compare(groupIndex, version, lease);
    }
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

  /**
   * Node `viewer` executed master version `version` of the group, won by node `master`, and takes
   * that lease to end at true time `end` (it would accept another bid from then on).
   */
  view(groupIndex: number, viewer: number, master: number, version: number, end: number): void {
    if (viewer === master) return;
    const lease = this.versionLease(groupIndex, version);
    if (lease.earliestView !== undefined && lease.earliestView.end <= end) return;
    lease.earliestView = { node: viewer, end };
    this.compare(groupIndex, version, lease);
  }

  /** The node stopped believing (a drop, or its process died) at true time `at`. */
  release(groupIndex: number, node: number, at: number): void {
    const hold = this.holds.get(groupIndex)?.get(node);
    if (hold !== undefined) hold.end = Math.min(hold.end, at);
  }

  releaseAll(node: number, at: number): void {
    for (const groupIndex of this.holds.keys()) this.release(groupIndex, node, at);
  }

  private compare(groupIndex: number, version: number, lease: VersionLease): void {
    const { holder, earliestView } = lease;
    if (lease.reported === true || holder === undefined || earliestView === undefined ||
      holder.end <= earliestView.end) return;
    lease.reported = true;
    this.violations.add(`group ${groupIndex}: node ${holder.node} believed its master lease (version ${version}) ` +
      `lasted until true time ${holder.end.toFixed(3)} ms, but node ${earliestView.node} took it to end at ` +
      `${earliestView.end.toFixed(3)} ms and could elect another master before then`);
  }

  private versionLease(groupIndex: number, version: number): VersionLease {
    let group = this.versions.get(groupIndex);
    if (group === undefined) this.versions.set(groupIndex, group = new Map());
    let lease = group.get(version);
    if (lease === undefined) group.set(version, lease = {});
    return lease;
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
