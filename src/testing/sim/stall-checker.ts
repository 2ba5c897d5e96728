/**
 * The stall checker: a group whose majority is healthy must keep deciding. The liveness phase only
 * asks for convergence within a minute of healing everything; a fault that heals and leaves the
 * group idle for several seconds (a peer waiting for a catch-up timer, a proposer waiting out a
 * timeout it should not need) passes it. This checker measures those waits all through the run.
 *
 * A member is healthy in a group when its process is up, not paused, its disk takes writes and the
 * group is not halted there. The group's *core* is the set of healthy members that belong to some
 * majority of the members that are healthy and pairwise connected in both directions (no cut link
 * between any two of them; random loss, duplication and delay are the network's weather, not a
 * fault, and the bound allows for them). While the core is not empty and a proposal waits at one
 * of its nodes, the group must decide a new instance (some value chosen by a majority of
 * acceptors) within the bound, counted from the latest of:
 *   - the last change of the core (a member crashed, paused, was cut off or came back): a fault
 *     that starts inside the core may cost a failover, one that heals may cost a catch-up, so
 *     both restart the clock; faults on nodes outside it (already cut off or down) do not;
 *   - the group's last decision;
 *   - the first proposal waiting in the core after both (a proposal that times out and is
 *     replaced does not restart the clock: the wait goes on).
 * The wait ends at a decision, or at the last moment a proposal waited once none has for the
 * grace period (STALL_GRACE_MS): a group with nothing to decide is not stalled, however long ago
 * its last decision was.
 * The longest wait so measured is kept per run, whether or not it exceeds the bound.
 */
import type { ProtocolTiming } from '../../core/config.js';
import type { Violations } from './checkers.js';

/**
 * How long no proposal may wait in the core before the current wait is over: longer than the gap
 * between a proposal that settled (timed out) and its replacement, at most twice the slowest
 * client gap of the swarm (250 ms), so that a replaced proposal does not restart the clock.
 */
export const STALL_GRACE_MS = 600;

/** What the checker reads from the cluster at each observation. */
export interface StallProbe {
  /** The group's voting members, as the newest membership the cluster applied says. */
  members(groupIndex: number): readonly number[];
  /** Up, not paused, disk taking writes, group not halted. */
  healthy(nodeId: number, groupIndex: number): boolean;
  /** The node's current instance in the group (everything below it is decided there); undefined when down. */
  position(nodeId: number, groupIndex: number): number | undefined;
  /** Whether messages from `from` reach `to` (no partition or cut between them). */
  linked(from: number, to: number): boolean;
  /** Whether a client proposal (or the liveness probe) waits at this node in this group. */
  waiting(nodeId: number, groupIndex: number): boolean;
}

/** One wait of a group: from `fromMs`, over `ms`, with the core that was healthy meanwhile. */
export interface Stall {
  readonly groupIndex: number;
  readonly fromMs: number;
  readonly ms: number;
  readonly core: readonly number[];
}

interface GroupWatch {
  /** The highest instance seen chosen (-1: none). */
  highestChosen: number;
  /** The core as last observed, as a bit set of node ids (0: no healthy connected majority). */
  core: number;
  coreSince: number;
  lastDecisionMs: number;
  /** When a proposal first waited in the core after the later of the two above (null: none yet). */
  demandSince: number | null;
  /** The last observation at which a proposal waited in the core. */
  lastDemandMs: number;
  /** The violation for the current wait was reported. */
  reported: boolean;
}

export interface StallCheckerOptions {
  readonly groupCount: number;
  readonly boundMs: number;
  readonly probe: StallProbe;
  readonly violations: Violations;
  /** The seed's replay command, for the violation's message. */
  readonly replay: string;
}

export class StallChecker {
  /** The longest wait observed in the run (null: the core never had a proposal waiting). */
  longest: Stall | null = null;
  private readonly options: StallCheckerOptions;
  private readonly groups: GroupWatch[];
  /** Cores already worked out, by healthy members and the cut links among them. */
  private readonly cores = new Map<string, number>();

  constructor(options: StallCheckerOptions) {
    this.options = options;
    this.groups = Array.from({ length: options.groupCount }, () => ({
      highestChosen: -1, core: 0, coreSince: 0, lastDecisionMs: 0, demandSince: null, lastDemandMs: 0,
      reported: false,
    }));
  }

  /**
   * A value was chosen in the group (first time anyone sees a majority accept it). An instance at or
   * below the highest chosen one is no progress (an older instance seen chosen late): ignored.
   */
  decided(groupIndex: number, instanceId: number, nowMs: number): void {
    const watch = this.groups[groupIndex];
    if (watch === undefined || instanceId <= watch.highestChosen) return;
    watch.highestChosen = instanceId;
    // Between two observations: the wait runs to now unless it was already over.
    this.measure(groupIndex, watch, nowMs - watch.lastDemandMs <= STALL_GRACE_MS ? nowMs : watch.lastDemandMs);
    watch.lastDecisionMs = nowMs;
    watch.demandSince = null;
    watch.reported = false;
  }

  /** Look at the cluster after an event: update each group's core and demand, measure its wait. */
  observe(nowMs: number): void {
    for (let groupIndex = 0; groupIndex < this.groups.length; groupIndex++) {
      const watch = this.groups[groupIndex] as GroupWatch;
      const core = this.coreOf(groupIndex);
      if (core !== watch.core) {
        this.measure(groupIndex, watch, watch.lastDemandMs);
        watch.core = core;
        watch.coreSince = nowMs;
        watch.demandSince = null;
        watch.reported = false;
      }
      if (core === 0) continue;
      if (this.demandIn(groupIndex, core)) {
        if (watch.demandSince === null) watch.demandSince = nowMs;
        watch.lastDemandMs = nowMs;
      } else if (watch.demandSince !== null && nowMs - watch.lastDemandMs > STALL_GRACE_MS) {
        // Nothing waits any more: the wait ended when the last proposal stopped waiting.
        this.measure(groupIndex, watch, watch.lastDemandMs);
        watch.demandSince = null;
        watch.reported = false;
        continue;
      }
      const stall = this.measure(groupIndex, watch, watch.lastDemandMs);
      if (stall !== null && stall.ms > this.options.boundMs && !watch.reported) {
        watch.reported = true;
        this.options.violations.add(`stall: group ${groupIndex} decided nothing for ${Math.round(stall.ms)} ms ` +
          `(bound ${this.options.boundMs} ms) from ${Math.round(stall.fromMs)} ms, while nodes ` +
          `{${stall.core.join(',')}} were up, connected and had a proposal waiting; replay: ${this.options.replay}`);
      }
    }
  }

  /** The current wait of a group up to `endMs`, recorded if it is the longest so far. */
  private measure(groupIndex: number, watch: GroupWatch, endMs: number): Stall | null {
    if (watch.core === 0 || watch.demandSince === null) return null;
    const fromMs = Math.max(watch.coreSince, watch.lastDecisionMs, watch.demandSince);
    const stall = { groupIndex, fromMs, ms: Math.max(0, endMs - fromMs), core: idsOf(watch.core) };
    if (this.longest === null || stall.ms > this.longest.ms) this.longest = stall;
    return stall;
  }

  private demandIn(groupIndex: number, core: number): boolean {
    for (const id of idsOf(core)) if (this.options.probe.waiting(id, groupIndex)) return true;
    return false;
  }

  /**
   * The union of every majority of members that are healthy and pairwise linked both ways (at
   * most 5 members and a follower: every subset is tried).
   */
  private coreOf(groupIndex: number): number {
    const { probe } = this.options;
    const members = probe.members(groupIndex);
    const highestChosen = (this.groups[groupIndex] as GroupWatch).highestChosen;
    const healthy = members.filter((id) => probe.healthy(id, groupIndex) &&
      (probe.position(id, groupIndex) ?? -1) >= highestChosen);
    const majority = Math.floor(members.length / 2) + 1;
    if (healthy.length < majority) return 0;
    // The links among the healthy members, as a key: the subsets are tried only when it changes.
    let key = `${majority}:${healthy.join(',')}:`;
    for (const a of healthy) for (const b of healthy) if (a !== b && !probe.linked(a, b)) key += `${a}>${b},`;
    const known = this.cores.get(key);
    if (known !== undefined) return known;
    let core = 0;
    for (let subset = 1; subset < 1 << healthy.length; subset++) {
      const chosen = healthy.filter((_, index) => (subset & (1 << index)) !== 0);
      if (chosen.length < majority || !pairwiseLinked(chosen, probe)) continue;
      for (const id of chosen) core |= 1 << id;
    }
    this.cores.set(key, core);
    return core;
  }
}

function pairwiseLinked(ids: readonly number[], probe: StallProbe): boolean {
  for (const a of ids) for (const b of ids) if (a !== b && !probe.linked(a, b)) return false;
  return true;
}

function idsOf(set: number): number[] {
  const ids: number[] = [];
  for (let id = 0; id < 31; id++) if ((set & (1 << id)) !== 0) ids.push(id);
  return ids;
}

/**
 * How long a healthy majority may go without deciding while a proposal waits, in true time. A budget
 * for the waits a change of the core can cost a healthy Multi-Paxos before a round succeeds:
 *   - a proposer whose round was lost to the fault times out and retries: the prepare timeout,
 *     which doubles after each failed round up to `prepareTimeoutMaxMs` (the accept timeout is
 *     shorter and leads to a prepare; the retry delay after a rejection is tens of ms);
 *   - a member the group needs, which must learn the instance before it can vote on the next one
 *     and cannot learn it from what the proposer sent, catches up through the four-message
 *     ask-for-learn exchange; if that fails to loss and nothing makes it ask early again (Learner),
 *     it asks at its next periodic ask, up to `askForLearnMaxMs` later. Two such asks are allowed.
 * Both can fall in one wait (a member learns, then the proposer's backed-off round must time out).
 * Those are timeouts of the nodes' clocks: a clock running at rate r < 1 (drift; down to 0.9 in the
 * lease seeds) takes 1/r as long in true time, so they are divided by the seed's slowest rate. A
 * second is added for the round trips of a slow network (delays up to 800 ms for the slowest
 * messages): 15 s at rate 1, 16.6 s at 0.9, with the default timing.
 *
 * It is not a proof: at the swarm's top loss rate (31%) a four-message exchange with one peer
 * succeeds about 0.69^4 = 23% of the time, so a run can lose more than two catch-ups in a row and
 * exceed the bound while healthy; what makes that rare is that the ask goes to every member and a
 * failed session is retried within half a second while the proposer keeps sending, and a node that
 * knows it is behind asks again by itself (Learner). The bound is therefore calibrated: the per-seed
 * worst wait over seeds 1-3000 of this build is at most 10.5 s (docs/guarantees-and-testing.md,
 * Stalls), and the bound is about 1.4 times as much.
 */
export function stallBoundMs(timing: ProtocolTiming, slowestClockRate = 1): number {
  return Math.ceil((timing.prepareTimeoutMaxMs + 2 * timing.askForLearnMaxMs) / slowestClockRate) + 1_000;
}
