/**
 * Decides and applies faults during the safety phase: crashes (of a random node, of a node with a
 * write in flight, of every node at once), restarts, pauses, and partitions of several shapes,
 * each healed after a while. It guarantees the run gets at least one crash with its restart and at
 * least one partition.
 */
import type { SeededRandom } from '../../util/random.js';
import type { SimScheduler } from './scheduler.js';
import type { SimNetwork } from './sim-network.js';
import type { CheckpointCrashPoint, SimNode } from './sim-node.js';
import type { SwarmConfig } from './swarm.js';

export interface FaultStats {
  crashes: number;
  restarts: number;
  partitions: number;
  pauses: number;
  crashesDuringWrite: number;
  masterDrops: number;
  membershipProposals: number;
  /** Crashes that struck during a snapshot save, a checkpoint transfer or an install. */
  checkpointCrashes: number;
}

const CHECKPOINT_CRASH_POINTS: readonly CheckpointCrashPoint[] = ['save', 'install', 'send', 'receive'];

export type PartitionShape = 'isolate' | 'split' | 'one-way' | 'bridge' | 'ring';

export class FaultInjector {
  readonly stats: FaultStats = {
    crashes: 0, restarts: 0, partitions: 0, pauses: 0, crashesDuringWrite: 0, masterDrops: 0, membershipProposals: 0,
    checkpointCrashes: 0,
  };
  private readonly scheduler: SimScheduler;
  private readonly random: SeededRandom;
  private readonly nodes: readonly SimNode[];
  private readonly network: SimNetwork;
  private readonly config: SwarmConfig;
  private readonly trace: (line: string) => void;
  private partitioned = false;
  private active = false;
  /** The node whose client last saw a success: most likely the one holding the promises. */
  lastProposer: number | null = null;

  constructor(scheduler: SimScheduler, random: SeededRandom, nodes: readonly SimNode[], network: SimNetwork,
    config: SwarmConfig, trace: (line: string) => void) {
    this.scheduler = scheduler;
    this.random = random;
    this.nodes = nodes;
    this.network = network;
    this.config = config;
    this.trace = trace;
  }

  start(untilMs: number): void {
    this.active = true;
    const { safetyMs } = this.config;
    this.scheduler.at(safetyMs * (0.1 + this.random.float() * 0.5), () => this.crashOne(true));
    this.scheduler.at(safetyMs * (0.1 + this.random.float() * 0.6), () => this.partition());
    this.scheduleNext(untilMs);
  }

  /** End the fault phase: heal everything and bring every node back. */
  healAll(): void {
    this.active = false;
    this.network.heal();
    this.partitioned = false;
    for (const node of this.nodes) {
      node.resume();
      if (node.state === 'down') this.restart(node);
    }
    this.trace('heal all');
  }

  /** A group stopped on a storage error: its process exits and a supervisor restarts it. */
  restartAfterHalt(node: SimNode): void {
    this.scheduler.after(this.random.float() * this.config.restartDelayMaxMs, () => {
      if (node.state === 'down') return;
      this.crash(node, false);
    });
  }

  restart(node: SimNode): void {
    if (node.state !== 'down') return;
    this.stats.restarts++;
    void node.start();
  }

  private scheduleNext(untilMs: number): void {
    const gap = this.random.float() * this.config.faultGapMs * 2;
    if (this.scheduler.now + gap >= untilMs) return;
    this.scheduler.after(gap, () => {
      if (!this.active) return;
      this.randomFault();
      this.scheduleNext(untilMs);
    });
  }

  private randomFault(): void {
    const master = this.config.master;
    if (master !== null && master.dropChance > 0 && this.random.chance(master.dropChance)) {
      const up = this.nodes.filter((node) => node.isUp && !node.paused);
      if (up.length > 0) this.stats.masterDrops += this.random.pick(up).dropMaster();
      return;
    }
    if (this.config.membershipChangeChance > 0 && this.random.chance(this.config.membershipChangeChance)) {
      this.changeMembership();
      return;
    }
    const { crashWeight, partitionWeight, pauseWeight } = this.config;
    const roll = this.random.float() * (crashWeight + partitionWeight + pauseWeight);
    if (roll < crashWeight) this.crashOne(false);
    else if (roll < crashWeight + partitionWeight) this.partition();
    else this.pauseOne();
  }

  /**
   * A running node proposes a membership change for a random group: remove a member (keeping at
   * least two), add a node that is not one, or replace one by another. It is made against the
   * version that node has, so a stale one fails whole (and it may be made by a non-member, which
   * cannot propose).
   */
  private changeMembership(): void {
    const up = this.nodes.filter((node) => node.isUp && !node.paused && !node.isFollower);
    if (up.length === 0) return;
    const proposer = this.random.pick(up);
    const groupIndex = this.random.int(0, this.config.groupCount);
    const members = proposer.members(groupIndex);
    if (members === undefined) return;
    const outsiders = this.nodes.filter((node) => !node.isFollower).map((node) => node.id)
      .filter((id) => !members.includes(id));
    const choices: string[] = [];
    if (members.length > 2) choices.push('remove');
    if (outsiders.length > 0) choices.push('add', 'replace');
    if (choices.length === 0) return;
    const choice = this.random.pick(choices);
    let next: number[];
    if (choice === 'remove') {
      const removed = this.random.pick(members);
      next = members.filter((id) => id !== removed);
    } else if (choice === 'add') {
      next = [...members, this.random.pick(outsiders)];
    } else {
      const removed = this.random.pick(members);
      next = [...members.filter((id) => id !== removed), this.random.pick(outsiders)];
    }
    this.stats.membershipProposals++;
    void proposer.proposeMembership(groupIndex, next);
  }

  private crashOne(mustRestart: boolean): void {
    if (!this.active) return;
    if (this.random.chance(this.config.crashAllChance)) {
      this.trace('crash every node');
      for (const node of this.nodes) if (node.state !== 'down') this.crash(node, false);
      return;
    }
    const up = this.nodes.filter((node) => node.state !== 'down');
    if (up.length === 0) return;
    const proposer = up.find((node) => node.id === this.lastProposer);
    const roll = this.random.float();
    // Most crashed nodes come back soon; some stay down long enough to fall far behind.
    const longOutage = !mustRestart && this.random.chance(0.1);
    const checkpoints = this.config.checkpoints;
    // Drawn only in runs with checkpoints, so that the others keep their fault schedule.
    if (!mustRestart && checkpoints !== null && this.random.chance(checkpoints.crashChance)) {
      const target = this.random.pick(up);
      const point = this.random.pick(CHECKPOINT_CRASH_POINTS);
      target.crashDuringCheckpoint(point, () => {
        if (!this.active) return;
        this.stats.checkpointCrashes++;
        this.trace(`n${target.id} crashes during checkpoint step ${point}`);
        this.crash(target, longOutage);
      });
      return;
    }
    if (!mustRestart && roll < 0.4) {
      // Power loss while a write is in flight: the reply that depends on it must not have left.
      const target = this.random.pick(up);
      target.crashDuringNextWrite(() => {
        if (!this.active) return;
        this.stats.crashesDuringWrite++;
        this.crash(target, longOutage);
      });
      return;
    }
    const target = roll < 0.7 && proposer !== undefined ? proposer : this.random.pick(up);
    this.crash(target, longOutage);
  }

  private crash(node: SimNode, longOutage: boolean): void {
    node.crash();
    this.stats.crashes++;
    const delayMs = longOutage ? this.config.safetyMs / 2 : this.random.float() * this.config.restartDelayMaxMs;
    this.scheduler.after(delayMs, () => this.restart(node));
  }

  private pauseOne(): void {
    const candidates = this.nodes.filter((node) => node.isUp && !node.paused);
    if (candidates.length === 0) return;
    const proposer = candidates.find((node) => node.id === this.lastProposer);
    const node = proposer !== undefined && this.random.chance(0.4) ? proposer : this.random.pick(candidates);
    node.pause();
    this.stats.pauses++;
    this.scheduler.after(this.random.float() * this.config.pauseMaxMs, () => node.resume());
  }

  private partition(): void {
    if (!this.active || this.partitioned) return;
    const shape = this.random.pick<PartitionShape>(this.nodes.length >= 5
      ? ['isolate', 'split', 'one-way', 'bridge', 'ring'] : ['isolate', 'split', 'one-way']);
    const ids = this.nodes.map((node) => node.id);
    const shuffled = this.random.shuffle(ids);
    // Cutting the master off is what tests the lease: it keeps believing while the others elect.
    const master = this.config.master === null ? undefined : this.nodes.find((node) => node.holdsMasterLease);
    if (master !== undefined && this.random.chance(0.5)) {
      shuffled.unshift(...shuffled.splice(shuffled.indexOf(master.id), 1));
    }
    this.applyShape(shape, shuffled);
    this.partitioned = true;
    this.stats.partitions++;
    this.trace(`partition ${shape} (${this.network.cutLinkCount} links cut)`);
    this.scheduler.after(200 + this.random.float() * this.config.partitionMaxMs, () => {
      if (!this.active) return;
      this.network.heal();
      this.partitioned = false;
      this.trace('partition healed');
    });
  }

  private applyShape(shape: PartitionShape, ids: number[]): void {
    const network = this.network;
    const first = ids[0] as number;
    const minority = Math.floor((ids.length - 1) / 2);
    switch (shape) {
      case 'isolate':
        network.partition([[first], ids.slice(1)]);
        return;
      case 'split':
        network.partition([ids.slice(0, minority), ids.slice(minority)]);
        return;
      case 'one-way': {
        // The node hears everyone but nobody hears it (or the reverse).
        const inbound = this.random.chance(0.5);
        for (const other of ids.slice(1)) {
          if (inbound) network.cut(other, first);
          else network.cut(first, other);
        }
        return;
      }
      case 'bridge': {
        // Two majorities that share one node: {a,b,c} and {c,d,e}.
        const [a, b, , d, e] = ids as [number, number, number, number, number];
        network.partition([[a, b], [d, e]]);
        return;
      }
      case 'ring':
        // Every node reaches only its two neighbours: each sees a majority, no two the same one.
        for (let i = 0; i < ids.length; i++) {
          for (let j = 0; j < ids.length; j++) {
            const distance = Math.min(Math.abs(i - j), ids.length - Math.abs(i - j));
            if (distance > 1) network.cut(ids[i] as number, ids[j] as number);
          }
        }
        return;
    }
  }
}
