/**
 * One simulated run, decided entirely by its seed: a cluster of 3 or 5 nodes with the real core and
 * runtime over a simulated network, disks and clocks; a safety phase with client load and faults;
 * then a liveness phase in which every fault is healed and the cluster must decide a new value and
 * bring every node up to date within a bound. Checkers watch throughout (checkers.ts).
 */
import { DEFAULT_TIMING, type CoreFaults } from '../../core/config.js';
import type { PaxosMessage } from '../../core/messages.js';
import { MESSAGE_KINDS } from '../../core/messages.js';
import type { DriverFaults } from '../../runtime/group-driver.js';
import { bytesEqual } from '../../util/bytes.js';
import { SeededRandom } from '../../util/random.js';
import { AgreementChecker, ExecutionChecker, Violations } from './checkers.js';
import { FaultInjector, type FaultStats } from './fault-injector.js';
import { SimScheduler } from './scheduler.js';
import { SimDisk } from './sim-disk.js';
import { SimFileStorage } from './sim-file-system.js';
import { SimNetwork, type NetworkStats } from './sim-network.js';
import { SimNode, type SimNodeOptions } from './sim-node.js';
import { MasterLeaseChecker } from './master-lease-checker.js';
import { builtInApplication, type SimApplication } from './sim-application.js';
import { SnapshotShelf } from './snapshot-shelf.js';
import { StallChecker, stallBoundMs, type Stall } from './stall-checker.js';
import { compareFinalStates, StateDigestChecker } from './state-digest-checker.js';
import { chooseCheckpoints, chooseSwarm, describeSwarm, type SwarmConfig } from './swarm.js';
import { Workload, type WorkloadStats } from './workload.js';

/** Deliberate bugs that the checkers must catch (see `npm run sim -- --canary NAME`). */
export const CANARIES = [
  'reply-before-persist', 'skip-fsync', 'forget-promise', 'accept-lower-ballot', 'learn-unchecked',
  'learn-next-by-ballot', 'master-ignores-drift', 'own-by-bytes', 'repropose-chosen',
  'clean-before-checkpoint-durable', 'execute-before-persist', 'slow-catch-up',
] as const;
/** Canaries that must fail at least 5 of the first 200 seeds (test/sim); the others are rarer (see their docs). */
export const FREQUENT_CANARIES: readonly CanaryName[] = [
  'reply-before-persist', 'skip-fsync', 'forget-promise', 'accept-lower-ballot', 'learn-unchecked',
  'master-ignores-drift', 'own-by-bytes', 'repropose-chosen', 'clean-before-checkpoint-durable',
  'execute-before-persist', 'slow-catch-up',
];
export type CanaryName = (typeof CANARIES)[number];

export interface SimRunOptions {
  readonly seed: number;
  readonly canary?: CanaryName;
  /** Keep the event trace in the result. */
  readonly trace?: boolean;
  /**
   * How to replay this seed, for violation messages that carry it (the stall checker's); by default
   * the simulator's own command, which runs its own application, not an embedder's.
   */
  readonly replay?: string;
}

export interface SimRunResult {
  readonly seed: number;
  readonly ok: boolean;
  readonly violations: readonly string[];
  readonly config: string;
  readonly instancesChosen: number;
  /** Instances finished with the no-op because they stalled with an accepted value. */
  readonly noopsChosen: number;
  readonly executions: number;
  /** Times a group's master lease went to a different node. */
  readonly masterChanges: number;
  /** Membership changes chosen and applied. */
  readonly membershipChanges: number;
  /** Checkpoints (all zero in runs without them). */
  readonly checkpoints: CheckpointStats;
  readonly faults: FaultStats;
  readonly network: NetworkStats;
  readonly workload: WorkloadStats;
  /** The longest a healthy majority waited for a decision with a proposal pending (stall-checker.ts). */
  readonly longestStall: Stall | null;
  readonly simulatedMs: number;
  readonly events: number;
  readonly wallMs: number;
  /** A hash of every message sent and every trace line: equal for two runs of one seed. */
  readonly traceHash: string;
  readonly trace: readonly string[];
}

export interface CheckpointStats {
  /** Snapshot saves issued, and those that became durable. */
  readonly saves: number;
  readonly saved: number;
  /** Checkpoints sent to a peer and installed (PaxosNode metrics, over every life). */
  readonly sent: number;
  readonly installed: number;
  /** Snapshot states the digest checker matched: taken at start-up, and installed. */
  readonly restoresChecked: number;
  /** Executions whose state the digest checker compared with another node's or life's. */
  readonly statesCompared: number;
  /** Acknowledged values found on a node through a restored snapshot rather than an execution. */
  readonly ackedViaSnapshot: number;
}

/** Bound on the liveness phase: after healing, the cluster must decide and converge within it. */
export const LIVENESS_BOUND_MS = 60_000;
const EVENT_BUDGET = 3_000_000;
/** How often (simulated ms) the stall checker looks at the cluster. */
const STALL_SAMPLE_MS = 20;

/** One run of the simulator's own application (sim-application.ts). */
export function runSeed(options: SimRunOptions): Promise<SimRunResult> {
  return runSimulation(options, (config) => builtInApplication(config.distinctValues));
}

/**
 * One run with the state machines and values of `makeApplication`: the simulator's own, or an
 * embedder's (simulate.ts). The seed decides everything else the same way for both.
 */
export async function runSimulation(
  options: SimRunOptions, makeApplication: (config: SwarmConfig) => SimApplication,
): Promise<SimRunResult> {
  const started = performance.now();
  const random = new SeededRandom(options.seed);
  const chosen = chooseSwarm(random);
  const application = makeApplication(chosen);
  const config = checkpointsFor(chosen, application, options);
  const scheduler = new SimScheduler();
  const violations = new Violations();
  const traceLines: string[] = [];
  let hash = 0x811c9dc5;
  const mix = (value: number): void => {
    hash = Math.imul(hash ^ (value | 0), 0x01000193) >>> 0;
  };
  const trace = (line: string): void => {
    for (let i = 0; i < line.length; i++) mix(line.charCodeAt(i));
    if (options.trace) traceLines.push(`${scheduler.now.toFixed(3).padStart(11)}ms ${line}`);
  };
  const members = Array.from({ length: config.nodeCount }, (_, index) => index + 1);
  const agreement = new AgreementChecker(members, violations);
  const executions = new ExecutionChecker(agreement, violations);
  const leases = new MasterLeaseChecker(violations);
  const digests = new StateDigestChecker(violations);
  const shelves: SnapshotShelf[] = [];
  const kindIndex = new Map(MESSAGE_KINDS.map((kind, index) => [kind, index]));
  const tap = (groupIndex: number, to: number, message: PaxosMessage): void => {
    mix(kindIndex.get(message.kind) ?? -1);
    mix(message.from);
    mix(to);
    mix(message.instanceId);
    mix(Math.floor(scheduler.now * 1000));
    if (options.trace) trace(`send g${groupIndex} ${message.kind}#${message.instanceId} n${message.from}->n${to}`);
    agreement.onSend(groupIndex, message);
  };
  const network = new SimNetwork(scheduler, random.fork(), { ...config.network }, tap);
  const { coreFaults, driverFaults } = canaryFaults(options.canary);
  const makeNode = (id: number, clock: SimNodeOptions['clock'], nodeRandom: SeededRandom,
    diskRandom: SeededRandom): SimNode => new SimNode({
    id, members, groupCount: config.groupCount, scheduler, network, follower: config.follower,
    disk: new SimDisk(scheduler, diskRandom, { ...config.disk }),
    ...(config.storage === 'file-log'
      ? { files: new SimFileStorage(scheduler, new SeededRandom(options.seed * 7919 + id),
        { ...config.disk }) }
      : {}),
    clock, random: nodeRandom, application, executions,
    executeFailureRate: config.executeFailureRate, maxBatchCount: config.maxBatchCount, leases, agreement,
    timing: config.catchUpByNode?.[id - 1] ?? { teachBytesBeyondAck: config.teachBytesBeyondAck },
    inlineWrites: config.inlineWrites, writeback: config.writeback,
    master: config.master === null ? null : { ...config.master, ignoreDrift: options.canary === 'master-ignores-drift' },
    coreFaults, driverFaults, trace,
    ...(config.checkpoints === null ? {} : {
      checkpoints: {
        settings: config.checkpoints, random: new SeededRandom(options.seed * 977 + id * 7919 + 0x3d),
        shelf: shelfFor(shelves), digests, reportBeforeDurable: options.canary === 'clean-before-checkpoint-durable',
      },
    }),
    onFatal: (error) => violations.add(`node ${id} failed: ${error instanceof Error ? error.stack : String(error)}`),
    onViolation: (message) => violations.add(message),
    onHalt: (node, groupIndex, reason) => {
      trace(`n${node} g${groupIndex} halted: ${reason.code}`);
      if (reason.code === 'DIVERGED') violations.add(`node ${node} group ${groupIndex}: ${reason.message}`);
      // Over the file store every storage fault halts with STORAGE_UNAVAILABLE and resumes by
      // itself; one that halts a group for good (needing the restart below) is a regression.
      else if (config.storage === 'file-log' && reason.code === 'GROUP_HALTED' && STORAGE_CAUSE.test(reason.message)) {
        violations.add(`node ${node} group ${groupIndex}: a storage fault halted the group for good: ${reason.message}`);
      }
      // A node whose disk refuses writes resumes by itself once it takes them again: no restart.
      else if (reason.code !== 'STORAGE_UNAVAILABLE') restartAfterHalt(node);
    },
  });
  // The argument order keeps each member's draws from the main stream as they always were.
  const nodes = members.map((id, index) => {
    const diskRandom = random.fork();
    const clock = config.clocks[index] ?? { offsetMs: 0, rate: 1 };
    return makeNode(id, clock, random.fork(), diskRandom);
  });
  const voters = [...nodes];
  if (config.follower !== null) {
    // A follower draws from its own streams, so that seeds without one are unchanged.
    const id = config.follower.id;
    nodes.push(makeNode(id, { offsetMs: 0, rate: 1 }, new SeededRandom(options.seed * 131 + 1),
      new SeededRandom(options.seed * 131 + 2)));
  }
  if (config.master !== null) {
    scheduler.afterEach(() => {
      for (const node of nodes) node.reportLeases();
    });
  }
  const faults = new FaultInjector(scheduler, random.fork(), nodes, network, config, trace);
  function restartAfterHalt(id: number): void {
    const node = nodes[id - 1];
    if (node !== undefined) faults.restartAfterHalt(node);
  }
  const workload = new Workload({
    scheduler, random: random.fork(), nodes: voters, groupCount: config.groupCount, agreement, executions,
    violations, application, concurrency: config.clientConcurrency, proposingNodes: config.proposingNodes,
    gapMs: config.clientGapMs,
    timeoutMs: config.proposeTimeoutMs,
    trace: (line) => {
      const node = Number(/^n(\d+)/.exec(line)?.[1]);
      if (Number.isFinite(node)) faults.lastProposer = node;
      trace(line);
    },
  });

  const stalls = new StallChecker({
    groupCount: config.groupCount, violations,
    boundMs: stallBoundMs(DEFAULT_TIMING, Math.min(...config.clocks.map((clock) => clock.rate))),
    replay: options.replay ??
      `npm run sim -- --seed ${options.seed}${options.canary === undefined ? '' : ` --canary ${options.canary}`} --trace`,
    probe: {
      members: (groupIndex) => newestMembers(voters, groupIndex) ?? members,
      healthy: (id, groupIndex) => {
        const node = nodes[id - 1];
        return node !== undefined && node.isUp && !node.paused && !node.diskFaulty && !node.isHalted(groupIndex);
      },
      position: (id, groupIndex) => nodes[id - 1]?.nowInstanceId(groupIndex),
      linked: (from, to) => !network.isCut(from, to),
      waiting: (id, groupIndex) => workload.isWaiting(id, groupIndex),
    },
  });
  agreement.onChosen = (groupIndex, instanceId) => stalls.decided(groupIndex, instanceId, scheduler.now);
  // Looked at once per STALL_SAMPLE_MS of simulated time at most: waits are seconds long, and
  // reading every node's status after every event would slow the runs by a third.
  let stallObservedAt = -Infinity;
  scheduler.afterEach(() => {
    if (scheduler.now - stallObservedAt < STALL_SAMPLE_MS) return;
    stallObservedAt = scheduler.now;
    stalls.observe(scheduler.now);
  });

  for (const node of nodes) void node.start();
  workload.start();
  faults.start(config.safetyMs);
  if (config.storage === 'file-log') {
    scheduleDiskFaults(scheduler, new SeededRandom(options.seed * 104_729 + 17),
      new SeededRandom(options.seed * 104_729 + 29), nodes, config.safetyMs, trace);
  }
  let withinBudget = await scheduler.run(config.safetyMs, () => violations.any, EVENT_BUDGET);

  workload.stop();
  healForLiveness(nodes, network, config, faults);
  if (withinBudget && !violations.any) {
    withinBudget = await checkLiveness(scheduler, nodes, config, workload, violations);
  }
  if (!withinBudget) violations.add(`event budget of ${EVENT_BUDGET} exhausted: livelock or runaway timer`);
  if (!violations.any) checkAcknowledged(nodes, workload, executions, violations);
  if (!violations.any && config.checkpoints !== null) compareFinalStates(nodes, config.groupCount, digests);
  if (!violations.any && application.finalCheck !== undefined) {
    const failure = await application.finalCheck(nodes, agreement);
    if (failure !== undefined) violations.add(failure);
  }

  return {
    seed: options.seed, ok: !violations.any, violations: violations.list, config: describeSwarm(config),
    instancesChosen: agreement.chosenCount, noopsChosen: agreement.noopsChosen, executions: executions.executions,
    masterChanges: leases.masterChanges, membershipChanges: agreement.membershipChanges,
    checkpoints: {
      saves: shelves.reduce((sum, shelf) => sum + shelf.saves, 0),
      saved: shelves.reduce((sum, shelf) => sum + shelf.saved, 0),
      sent: nodes.reduce((sum, node) => sum + node.checkpointTotals().sent, 0),
      installed: nodes.reduce((sum, node) => sum + node.checkpointTotals().installed, 0),
      restoresChecked: digests.restoredAtStart + digests.installed,
      statesCompared: digests.compared + digests.finalCompared,
      ackedViaSnapshot: executions.heldBySnapshot,
    },
    faults: faults.stats, longestStall: stalls.longest,
    network: network.stats, workload: workload.stats, simulatedMs: scheduler.now, events: scheduler.eventsRun,
    wallMs: performance.now() - started, traceHash: hash.toString(16).padStart(8, '0'), trace: traceLines,
  };
}

/**
 * Checkpoints run only with state machines that keep snapshots (the simulator's own); the canary
 * that breaks them needs them in every seed.
 */
function checkpointsFor(config: SwarmConfig, application: SimApplication, options: SimRunOptions): SwarmConfig {
  // The rare canary is pinned to a seed found before checkpoints existed: its run must stay as recorded.
  if (application.keepsSnapshots !== true || options.canary === 'learn-next-by-ballot') {
    return { ...config, checkpoints: null };
  }
  if (options.canary === 'clean-before-checkpoint-durable') {
    // The bug bites when the cleaner runs between a snapshot's report and its durability and a crash
    // follows: slow saves, an eager cleaner with no hold, and crashes aimed at saves make that common.
    const settings = config.checkpoints ?? chooseCheckpoints(options.seed, true);
    if (settings === null) return config;
    return {
      ...config, checkpoints: { ...settings, saveMs: 400, cleanIntervalMs: 50, holdInstances: 0, crashChance: 0.6 },
    };
  }
  return config;
}

/** A new node's snapshot shelf (it outlives the node's processes), kept for the run's counts. */
function shelfFor(shelves: SnapshotShelf[]): SnapshotShelf {
  const shelf = new SnapshotShelf();
  shelves.push(shelf);
  return shelf;
}

function canaryFaults(canary: CanaryName | undefined): { coreFaults?: CoreFaults; driverFaults?: DriverFaults } {
  switch (canary) {
    case undefined: return {};
    case 'reply-before-persist': return { driverFaults: { replyBeforePersist: true } };
    case 'skip-fsync': return { driverFaults: { skipFsync: true } };
    case 'repropose-chosen': return { driverFaults: { reproposeChosen: true } };
    case 'execute-before-persist': return { driverFaults: { executeBeforePersist: true } };
    case 'forget-promise': return { coreFaults: { forgetPromise: true } };
    case 'accept-lower-ballot': return { coreFaults: { acceptLowerBallot: true } };
    case 'learn-unchecked': return { coreFaults: { learnUnchecked: true } };
    case 'learn-next-by-ballot': return { coreFaults: { learnNextByBallotOnly: true } };
    case 'own-by-bytes': return { coreFaults: { ownByBytes: true } };
    case 'slow-catch-up': return { coreFaults: { slowCatchUp: true } };
    case 'master-ignores-drift': return {}; // applied to the master managers, not the core
    case 'clean-before-checkpoint-durable': return {}; // applied to the simulator's state machines
  }
}

/**
 * The file-store seeds fill a node's disk for a while, a few times in the safety phase (from a
 * stream of their own, so every other draw of the seed is as before): its groups halt with
 * STORAGE_UNAVAILABLE and must come back by themselves once it is freed; the liveness phase then
 * checks they did, as it requires every node to catch up.
 */
function scheduleDiskFaults(scheduler: SimScheduler, random: SeededRandom, kinds: SeededRandom,
  nodes: readonly SimNode[], untilMs: number, trace: (line: string) => void): void {
  const windows = random.int(2, 6);
  for (let i = 0; i < windows; i++) {
    const node = random.pick(nodes);
    const at = random.float() * untilMs * 0.8;
    const forMs = 500 + random.float() * 5_000;
    // Full (only writes that grow a file fail), or failing (every write, fsync and directory sync
    // fails with EIO, appends into a pre-allocated segment included, half of each write landing).
    const fault = kinds.float() < 0.5 ? 'full' : 'failing';
    scheduler.at(at, () => {
      if (!node.setDiskFault(fault)) return;
      trace(`n${node.id} disk ${fault} for ${Math.round(forMs)} ms`);
      scheduler.after(forMs, () => {
        node.setDiskFault(undefined);
        trace(`n${node.id} disk healthy again`);
      });
    });
  }
}

/** A halt's message that names a failed disk operation. */
const STORAGE_CAUSE = /ENOSPC|EIO|EROFS|STORAGE_UNAVAILABLE|storage|write failed|read failed/;

function healForLiveness(
  nodes: readonly SimNode[], network: SimNetwork, config: SwarmConfig, faults: FaultInjector,
): void {
  network.faults = { ...network.faults, lossRate: 0, duplicateRate: 0, slowRate: 0 };
  faults.healAll();
  for (const node of nodes) {
    // A group that halted on a write error stays down until its process restarts (as in production);
    // one halted because its disk refused writes resumes by itself, which liveness then checks.
    node.setDiskFault(undefined);
    const halted = Array.from({ length: config.groupCount }, (_, group) =>
      node.isHalted(group) && node.status(group)?.halted?.code !== 'STORAGE_UNAVAILABLE').some(Boolean);
    if (halted) {
      node.crash();
      faults.restart(node);
    }
  }
}

async function checkLiveness(scheduler: SimScheduler, nodes: readonly SimNode[], config: SwarmConfig,
  workload: Workload, violations: Violations): Promise<boolean> {
  for (const node of nodes) node.disableDiskFaults();
  const deadline = scheduler.now + LIVENESS_BOUND_MS;
  const decided = new Set<number>();
  /** Per group, where the furthest node was when the probe was decided: every node must get there. */
  const targets = new Map<number, number>();
  const probe = (groupIndex: number): void => {
    if (decided.has(groupIndex) || scheduler.now >= deadline) return;
    // Only a member can propose: the membership may have changed during the run.
    const up = nodes.filter((node) => node.isUp && (node.members(groupIndex)?.includes(node.id) ?? false));
    const node = up[groupIndex % Math.max(1, up.length)];
    if (node === undefined) {
      scheduler.after(100, () => probe(groupIndex));
      return;
    }
    void workload.propose(node, groupIndex, 10_000, 'probe').then((code) => {
      if (code === 'OK') {
        decided.add(groupIndex);
        targets.set(groupIndex, Math.max(...nodes.map((each) => each.nowInstanceId(groupIndex) ?? 0)));
      }
      else scheduler.after(50, () => probe(groupIndex));
    });
  };
  scheduler.after(0, () => {
    for (let groupIndex = 0; groupIndex < config.groupCount; groupIndex++) probe(groupIndex);
  });
  // Every node must also get past every acknowledged value (some are chosen after the probe).
  const withAcked = (): Map<number, number> => {
    const all = new Map(targets);
    for (const acked of workload.acked) {
      all.set(acked.groupIndex, Math.max(all.get(acked.groupIndex) ?? 0, acked.instanceId + 1));
    }
    return all;
  };
  const converged = (): boolean => decided.size === config.groupCount &&
    allCaughtUp(nodes, config.groupCount, withAcked());
  const withinBudget = await scheduler.run(deadline, () => converged() || violations.any, EVENT_BUDGET * 2);
  if (!withinBudget || violations.any) return withinBudget;
  if (!converged()) {
    const where = nodes.map((node) => `n${node.id}:${node.state}@` +
      Array.from({ length: config.groupCount }, (_, g) => node.nowInstanceId(g) ?? '-').join('/')).join(' ');
    violations.add(`liveness: ${decided.size}/${config.groupCount} groups decided a new value and nodes ` +
      `${allCaughtUp(nodes, config.groupCount, withAcked()) ? 'converged' : 'did not converge'} within ` +
      `${LIVENESS_BOUND_MS} ms of healing (${where})`);
  }
  return true;
}

/** The group's members as the running node with the newest membership has them. */
function newestMembers(nodes: readonly SimNode[], groupIndex: number): readonly number[] | undefined {
  let newest: SimNode | undefined;
  for (const node of nodes) {
    if (!node.isUp) continue;
    if (newest === undefined || node.membershipVersion(groupIndex) > newest.membershipVersion(groupIndex)) {
      newest = node;
    }
  }
  return newest?.members(groupIndex);
}

/**
 * Members are caught up when they all stand at the same instance. Nodes outside the membership
 * receive no broadcasts and learn only by asking, so while the group keeps deciding (master
 * renewals) they trail by up to one ask interval: they must reach where the furthest node was when
 * the liveness probe was decided.
 */
function allCaughtUp(nodes: readonly SimNode[], groupCount: number, targets: ReadonlyMap<number, number>): boolean {
  for (let groupIndex = 0; groupIndex < groupCount; groupIndex++) {
    if (nodes.some((node) => !node.isUp || node.isExecuting(groupIndex))) return false;
    const newest = nodes.reduce((best, node) => (node.membershipVersion(groupIndex) > best.membershipVersion(groupIndex)
      ? node : best));
    const members = newest.members(groupIndex) ?? [];
    const positions = nodes.filter((node) => members.includes(node.id)).map((node) => node.nowInstanceId(groupIndex));
    if (positions.length === 0 || positions.some((position) => position !== positions[0])) return false;
    const target = targets.get(groupIndex) ?? 0;
    if (nodes.some((node) => (node.nowInstanceId(groupIndex) ?? -1) < target)) return false;
  }
  return true;
}

function checkAcknowledged(nodes: readonly SimNode[], workload: Workload, executions: ExecutionChecker,
  violations: Violations): void {
  for (const acked of workload.acked) {
    for (const node of nodes) {
      const executed = executions.executedBy(node.id, acked.groupIndex, acked.instanceId, acked.batchIndex);
      if (executed === undefined || !bytesEqual(executed, acked.value)) {
        violations.add(`acknowledged value of node ${acked.node} at group ${acked.groupIndex} instance ` +
          `${acked.instanceId} is ${executed === undefined ? 'missing' : 'different'} on node ${node.id}`);
        return;
      }
    }
  }
}
