/**
 * Swarm testing: the seed picks the cluster and the fault mix, not only the fault timing, so that
 * many seeds cover many kinds of runs (TigerBeetle's VOPR does the same). Every run has message
 * loss, duplication and reordering, at least one crash and restart, and at least one partition.
 */
import { DEFAULT_TIMING } from '../../core/config.js';
import { SeededRandom } from '../../util/random.js';
import type { DiskFaults } from './sim-disk.js';
import type { NetworkFaults } from './sim-network.js';
import type { SimClockSettings } from './sim-clock.js';

/** The catch-up settings a node may have of its own (see SwarmConfig.catchUpByNode). */
export interface CatchUpTiming {
  readonly teachBytesBeyondAck: number;
  readonly learnAckLead: number;
  readonly teachAckLead: number;
}

export interface SwarmConfig {
  readonly nodeCount: 3 | 5;
  readonly groupCount: number;
  /** Which LogStore the nodes run: the SimDisk model, or the real FileLogStore on a simulated file system. */
  readonly storage: 'sim-disk' | 'file-log';
  /**
   * Over the file store, whether small durable writes are made on the loop's thread (the
   * production default) or as write + fdatasync through the page cache (where crashes tear them).
   */
  readonly inlineWrites: boolean;
  /**
   * Over the file store, the order a write-back puts pages on the disk: in file order, so a crash
   * keeps a prefix, or last page first, so a crash keeps later pages without earlier ones, as a
   * disk completing writes out of order may (LazyFileSystem's `writeback`).
   */
  readonly writeback: 'in-order' | 'reverse';
  /** How many waiting proposals one instance may carry (1: batching off). */
  readonly maxBatchCount: number;
  /**
   * The catch-up byte budget (timing.teachBytesBeyondAck): the default, or a few hundred bytes so
   * that the simulator's small values fill it and reads are deferred and asked for again.
   */
  readonly teachBytesBeyondAck: number;
  /**
   * Catch-up settings that differ between nodes (indexed by node id - 1; the follower last), or
   * null when every node uses the seed's budget and the default ack lead. Members of a real
   * cluster are configured one by one and restarted one at a time, so a teacher and its learner
   * need not agree on how many bytes or instances go between acks.
   */
  readonly catchUpByNode: readonly CatchUpTiming[] | null;
  /** Master election on every group, or null; `dropChance` is the share of faults that are dropMaster. */
  readonly master: { readonly leaseMs: number; readonly driftBound: number; readonly dropChance: number } | null;
  /** A follower node (id after the members) and the member it follows, or null. */
  readonly follower: { readonly id: number; readonly follows: number } | null;
  /** Share of faults that are membership changes (0: the membership never changes). */
  readonly membershipChangeChance: number;
  readonly network: NetworkFaults;
  readonly disk: DiskFaults;
  readonly clocks: readonly SimClockSettings[];
  /** Length of the phase with faults and client load, in simulated ms. */
  readonly safetyMs: number;
  /** Mean gap between fault actions. */
  readonly faultGapMs: number;
  readonly crashWeight: number;
  readonly partitionWeight: number;
  readonly pauseWeight: number;
  /** Chance that a crash takes every node down at once. */
  readonly crashAllChance: number;
  readonly restartDelayMaxMs: number;
  readonly partitionMaxMs: number;
  readonly pauseMaxMs: number;
  readonly executeFailureRate: number;
  /** Client proposals in flight per node and group, the gap between them, and their timeout. */
  readonly clientConcurrency: number;
  /** Nodes whose clients propose: all of them (dueling proposers) or one (as behind a master). */
  readonly proposingNodes: 'all' | 'one';
  /**
   * How many distinct payloads clients propose: null for a unique value per proposal, or a handful,
   * so that byte-identical proposals from several nodes and callers race for the same instances.
   */
  readonly distinctValues: number | null;
  readonly clientGapMs: number;
  readonly proposeTimeoutMs: number;
  /**
   * Checkpoints (null: off, every life replays the log from 0): state machines save durable
   * snapshots about every `snapshotGapMs` (each save taking up to `saveMs`), the node's log cleaner
   * deletes the log below them less `holdInstances` every `cleanIntervalMs`, and nodes that fall
   * behind every peer's log install a peer's snapshot. `crashChance` is the share of crashes aimed
   * at a snapshot save, a transfer or an install.
   */
  readonly checkpoints: CheckpointSettings | null;
}

export interface CheckpointSettings {
  readonly snapshotGapMs: number;
  readonly saveMs: number;
  readonly holdInstances: number;
  readonly cleanIntervalMs: number;
  readonly crashChance: number;
}

export function chooseSwarm(random: SeededRandom): SwarmConfig {
  const nodeCount = random.chance(0.6) ? 3 : 5;
  const maxDelayMs = random.pick([2, 10, 30, 80]);
  const clocks: SimClockSettings[] = [];
  const drifts = random.chance(0.5);
  for (let i = 0; i < nodeCount; i++) {
    clocks.push({ offsetMs: random.int(0, 100_000), rate: drifts ? 0.95 + random.float() * 0.1 : 1 });
  }
  const slowDisk = random.chance(0.3);
  const master = chooseMaster(random.seed);
  const duplicates = chooseDistinctValues(random.seed);
  if (master !== null) {
    // Leases are where drift matters: run every clock at the edge of the bound, fast or slow.
    const rates = new SeededRandom(random.seed * 8191 + 0x51ed);
    const edges = [1 - master.driftBound, 1 + master.driftBound];
    for (const clock of clocks) Object.assign(clock, { rate: rates.pick(edges) });
  }
  return {
    nodeCount,
    groupCount: random.chance(0.75) ? 1 : 2,
    storage: chooseStorage(random.seed),
    inlineWrites: new SeededRandom(random.seed * 22695477 + 0x51f7).chance(0.5),
    writeback: new SeededRandom(random.seed * 69069 + 0x3c6e).chance(0.5) ? 'reverse' : 'in-order',
    maxBatchCount: chooseBatchCount(random.seed),
    teachBytesBeyondAck: chooseTeachBytes(random.seed),
    catchUpByNode: chooseCatchUpByNode(random.seed, nodeCount + 1),
    master,
    membershipChangeChance: chooseMembershipChanges(random.seed),
    follower: chooseFollower(random.seed, nodeCount),
    network: {
      lossRate: 0.01 + random.float() * random.pick([0.04, 0.15, 0.3]),
      duplicateRate: 0.01 + random.float() * random.pick([0.05, 0.2, 0.4]),
      minDelayMs: random.float() * maxDelayMs * 0.3,
      maxDelayMs,
      slowRate: random.pick([0, 0.01, 0.05]),
    },
    disk: {
      latencyMinMs: slowDisk ? 1 : 0.05,
      latencyMaxMs: slowDisk ? random.pick([5, 20]) : random.pick([0.3, 1, 3]),
      slowRate: random.pick([0, 0.01, 0.05]),
      writeErrorRate: random.chance(0.15) ? 0.002 : 0,
      tornTailRate: 0.5,
    },
    clocks,
    safetyMs: random.int(15_000, 40_000),
    faultGapMs: random.int(300, 2_000),
    crashWeight: random.pick([1, 2, 4]),
    partitionWeight: random.pick([1, 2, 4]),
    pauseWeight: random.pick([0, 1, 2]),
    crashAllChance: random.pick([0, 0.05, 0.15]),
    restartDelayMaxMs: random.pick([300, 1_500, 5_000, 15_000]),
    partitionMaxMs: random.pick([1_000, 4_000, 8_000]),
    pauseMaxMs: random.pick([500, 3_000]),
    executeFailureRate: random.chance(0.2) ? 0.05 : 0,
    clientConcurrency: random.int(1, 6),
    // Equal bytes race only when several nodes propose them.
    proposingNodes: random.chance(0.35) && duplicates === null ? 'one' : 'all',
    distinctValues: duplicates,
    clientGapMs: random.pick([5, 20, 80, 250]),
    proposeTimeoutMs: random.pick([2_000, 5_000, 10_000]),
    checkpoints: chooseCheckpoints(random.seed),
  };
}

export function describeSwarm(config: SwarmConfig): string {
  const n = config.network;
  return `nodes=${config.nodeCount} groups=${config.groupCount} storage=${config.storage}` +
    `${config.storage === 'file-log' && config.inlineWrites ? '+inline' : ''}` +
    `${config.storage === 'file-log' && config.writeback === 'reverse' ? '+reverse' : ''} ` +
    `batch=${config.maxBatchCount} teachBytes=${config.teachBytesBeyondAck}` +
    `${config.catchUpByNode === null ? '' : ` catchUp=${config.catchUpByNode.map((node) =>
      `${node.teachBytesBeyondAck}/${node.learnAckLead}/${node.teachAckLead}`).join(',')}`} master=${config.master === null ? 'off' : config.master.leaseMs} ` +
    `membership=${config.membershipChangeChance} follower=${config.follower === null ? 'none' : config.follower.follows} ` +
    `loss=${n.lossRate.toFixed(3)} ` +
    `dup=${n.duplicateRate.toFixed(3)} delay=${n.minDelayMs.toFixed(1)}-${n.maxDelayMs}ms ` +
    `disk=${config.disk.latencyMinMs}-${config.disk.latencyMaxMs}ms writeErrors=${config.disk.writeErrorRate} ` +
    `safety=${config.safetyMs}ms faultGap=${config.faultGapMs}ms clients=${config.clientConcurrency}` +
    `@${config.proposingNodes} values=${config.distinctValues ?? 'unique'}` +
    (config.checkpoints === null ? '' : ` checkpoints=${config.checkpoints.snapshotGapMs}ms/` +
      `hold${config.checkpoints.holdInstances}/clean${config.checkpoints.cleanIntervalMs}ms`);
}

/**
 * A third of the seeds run the real FileLogStore. Drawn from its own stream, so that adding it left
 * every other choice of every seed (and the seeds recorded as regressions) unchanged.
 */
function chooseStorage(seed: number): SwarmConfig['storage'] {
  return new SeededRandom(seed * 2654435761 + 0x9e37).chance(0.3) ? 'file-log' : 'sim-disk';
}

/** A catch-up budget small enough to bind in a third of the seeds, from its own stream. */
function chooseTeachBytes(seed: number): number {
  const random = new SeededRandom(seed * 16807 + 0x7ac3);
  return random.chance(1 / 3) ? random.pick([200, 600, 2_000]) : DEFAULT_TIMING.teachBytesBeyondAck;
}

/**
 * In a quarter of the seeds, every node (the follower included) draws its own catch-up budget,
 * learner's ack lead and teacher's ack lead, from its own stream: a budget smaller than the
 * learner's ack interval (a quarter of the learner's budget, or its ack lead in values) is a
 * teacher waiting for an ack the learner's own rule would not send.
 */
function chooseCatchUpByNode(seed: number, nodes: number): readonly CatchUpTiming[] | null {
  const random = new SeededRandom(seed * 48271 + 0x1ac5);
  if (!random.chance(1 / 4)) return null;
  return Array.from({ length: nodes }, () => ({
    teachBytesBeyondAck: random.pick([200, 2_000, DEFAULT_TIMING.teachBytesBeyondAck]),
    learnAckLead: random.pick([4, DEFAULT_TIMING.learnAckLead, 400]),
    teachAckLead: random.pick([40, DEFAULT_TIMING.teachAckLead]),
  }));
}

/** Batching in most seeds, from its own stream for the same reason as the storage choice. */
function chooseBatchCount(seed: number): number {
  return new SeededRandom(seed * 40503 + 0x5bd1).pick([1, 4, 16, 64]);
}

/**
 * Master election in about half of the seeds, with a drift bound of 5% or 10%; the seed's clocks
 * are then set to the edges of that bound. Drawn from its own stream, like the storage choice.
 */
function chooseMaster(seed: number): SwarmConfig['master'] {
  const random = new SeededRandom(seed * 69069 + 0x3c6e);
  if (!random.chance(0.5)) return null;
  return {
    leaseMs: random.pick([1_000, 2_000, 4_000]),
    // Clocks then run at the edges of the bound: a wider bound gives the canary more room to fail.
    driftBound: random.pick([0.05, 0.1]),
    dropChance: random.pick([0, 0.2, 0.5]),
  };
}

/** Membership changes during faults in about a third of the seeds, from their own stream. */
function chooseMembershipChanges(seed: number): number {
  const random = new SeededRandom(seed * 48271 + 0x2f1b);
  return random.chance(0.35) ? random.pick([0.2, 0.4]) : 0;
}

/** A follower in about a third of the seeds, following a random member; from its own stream. */
function chooseFollower(seed: number, nodeCount: number): SwarmConfig['follower'] {
  const random = new SeededRandom(seed * 16807 + 0x7a3d);
  return random.chance(0.3) ? { id: nodeCount + 1, follows: random.int(1, nodeCount + 1) } : null;
}

/**
 * In about a third of the seeds every node proposes from a handful of payloads (a lost write hides
 * behind equal bytes, never behind unique ones); from its own stream.
 */
function chooseDistinctValues(seed: number): number | null {
  const random = new SeededRandom(seed * 22695477 + 0x1d0f);
  return random.chance(0.35) ? random.pick([1, 2, 4]) : null;
}

/**
 * Checkpoints with aggressive log cleaning in about 40% of the seeds, from their own stream. The
 * hold is small, so a node that is down or cut off for a few seconds falls behind every peer's log
 * and must install a snapshot.
 */
export function chooseCheckpoints(seed: number, always = false): CheckpointSettings | null {
  const random = new SeededRandom(seed * 31337 + 0x4c1e);
  if (!random.chance(0.4) && !always) return null;
  return {
    snapshotGapMs: random.pick([200, 600, 1_500]),
    saveMs: random.pick([2, 10, 40]),
    holdInstances: random.pick([0, 2, 10, 40]),
    cleanIntervalMs: random.pick([50, 200, 500]),
    crashChance: random.pick([0.2, 0.4]),
  };
}
