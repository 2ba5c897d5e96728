/**
 * One simulated node: a process that can start, crash, restart from its simulated disk alone, and
 * pause. Each life starts the node we ship, `PaxosNode.start`, with the simulated clock, timer,
 * network, store and randomness injected. Everything that reaches the process (messages, disk
 * completions, its one timer) goes through a gate that drops it when the life that asked for it is
 * over, and holds it while the process is paused. A crash does not stop the node: the old
 * PaxosNode is abandoned, and with its gate shut it never acts again.
 */
import type { CoreFaults, ProtocolTiming } from '../../core/config.js';
import type { GroupStatus } from '../../core/group-core.js';
import type { PaxosMessage } from '../../core/messages.js';
import type { HaltReason } from '../../core/ready.js';
import { NOT_CHOSEN, PaxosError } from '../../errors.js';
import { FileLogStore } from '../../io/file-log-store.js';
import type { MemberAddress } from '../../node/node-options.js';
import { PaxosNode, type NodeProposeResult } from '../../node/paxos-node.js';
import { NODE_TEST_FAULTS, type OptionsWithTestFaults } from '../../node/test-faults.js';
import type { DriverFaults } from '../../runtime/group-driver.js';
import { SILENT_LOGGER, type ExecuteInput, type Logger, type LogStore, type StateMachine, type Transport } from '../../runtime/interfaces.js';
import type { Membership } from '../../runtime/membership/membership-codec.js';
import { frameValue } from '../../runtime/value-frame.js';
import type { SeededRandom } from '../../util/random.js';
import { LazyFileSystem } from '../lazy-file-system.js';
import type { AgreementChecker, ExecutionChecker } from './checkers.js';
import type { MasterLeaseChecker } from './master-lease-checker.js';
import type { SimApplication } from './sim-application.js';
import type { SimScheduler } from './scheduler.js';
import { SimClock, type SimClockSettings } from './sim-clock.js';
import type { ProcessGate, SimDevice } from './sim-device.js';
import type { SimDisk } from './sim-disk.js';
import type { SimFileStorage } from './sim-file-system.js';
import type { SimNetwork } from './sim-network.js';
import { DurableInstances } from './durable-instances.js';
import { ProposalMarker } from './proposal-marker.js';
import { simTimerHost } from './sim-timer-host.js';
import { DigestStateMachine, type SnapshotHost } from './digest-state-machine.js';
import type { SnapshotShelf } from './snapshot-shelf.js';
import type { StateDigestChecker } from './state-digest-checker.js';
import type { CheckpointSettings } from './swarm.js';

/** Where a crash aimed at checkpointing strikes: a snapshot save, an install, sending or receiving one. */
export type CheckpointCrashPoint = 'save' | 'install' | 'send' | 'receive';

/** A run with checkpoints: the node's snapshot shelf (it outlives the processes) and the checker. */
export interface SimNodeCheckpoints {
  readonly settings: CheckpointSettings;
  /** Timing of snapshots and of crashes aimed at them (a stream of the node's own). */
  readonly random: SeededRandom;
  readonly shelf: SnapshotShelf;
  readonly digests: StateDigestChecker;
  /** Canary clean-before-checkpoint-durable. */
  readonly reportBeforeDurable: boolean;
}

/** Checkpoint transfer tuned to the simulation: small pieces (a snapshot takes several), short timeouts. */
const SIM_CHECKPOINT_TRANSFER = {
  chunkBytes: 512, windowChunks: 4, ackTimeoutMs: 2_000, pieceTimeoutMs: 2_000, askTimeoutMs: 1_000,
};

export type NodeState = 'down' | 'starting' | 'up';

export interface SimNodeOptions {
  readonly id: number;
  readonly members: readonly number[];
  /** The cluster's follower and the member it follows, if there is one. */
  readonly follower: { readonly id: number; readonly follows: number } | null;
  readonly groupCount: number;
  readonly scheduler: SimScheduler;
  readonly network: SimNetwork;
  readonly disk: SimDisk;
  /**
   * When set, the node runs the real FileLogStore over this simulated file system (under a
   * LazyFileSystem that loses unsynced writes at a crash) instead of the SimDisk store.
   */
  readonly files?: SimFileStorage;
  readonly clock: SimClockSettings;
  readonly random: SeededRandom;
  /** Makes each life's state machines (which the node wraps to watch and to fail on purpose). */
  readonly application: SimApplication;
  readonly executions: ExecutionChecker;
  readonly timing?: Partial<ProtocolTiming>;
  /** Chance that one execution attempt fails (it must be retried, never skipped). */
  readonly executeFailureRate: number;
  /** Over the file store: small durable writes on the loop's thread (FileLogStore's default). */
  readonly inlineWrites?: boolean;
  /** The page order of LazyFileSystem's write-back over the file store (default in file order). */
  readonly writeback?: 'in-order' | 'reverse';
  /** How many waiting proposals one instance may carry. */
  readonly maxBatchCount: number;
  /** Master election on every group (null: off); `ignoreDrift` is the master-ignores-drift canary. */
  readonly master: { readonly leaseMs: number; readonly driftBound: number; readonly ignoreDrift: boolean } | null;
  readonly leases: MasterLeaseChecker;
  /** Sees every membership change a node applies. */
  readonly agreement: AgreementChecker;
  readonly coreFaults?: CoreFaults;
  readonly driverFaults?: DriverFaults;
  readonly trace: (line: string) => void;
  readonly onFatal: (error: unknown) => void;
  /**
   * A rule broken inside the node's process: a state machine threw on its own (not a simulated
   * failure; the library would retry it forever), or a proposal executed twice on its node.
   */
  readonly onViolation: (message: string) => void;
  readonly onHalt: (node: number, groupIndex: number, reason: HaltReason) => void;
  /** Checkpoints and log cleaning (undefined: off; every life replays the log from instance 0). */
  readonly checkpoints?: SimNodeCheckpoints;
}

/** How long a membership change proposed by the fault injector may take. */
const MEMBERSHIP_TIMEOUT_MS = 5_000;
/** How soon a node that found no room to start is started again (a supervisor's first restart). */
const RESTART_WHEN_FULL_MS = 500;

export class SimNode {
  readonly id: number;
  state: NodeState = 'down';
  paused = false;
  life = 0;
  private node: PaxosNode | undefined;
  private readonly options: SimNodeOptions;
  private readonly clock: SimClock;
  private heldWhilePaused: (() => void)[] = [];
  private readonly network: Transport;
  /** The current life's receiver of inbound messages (its PaxosNode registers it). */
  private receiver: ((groupIndex: number, message: PaxosMessage) => void) | undefined;
  /** Client calls waiting on the current life: a crash fails them, as a dead process's connections would. */
  private readonly calls = new Set<(error: PaxosError) => void>();
  /** Per group, the master version whose lease this node was last seen to hold (for the trace). */
  private readonly leaseVersions = new Map<number, number>();
  /** Per group, the state machines of the current life, as the application made them. */
  private readonly machines = new Map<number, readonly StateMachine[]>();
  /** What the current life's log holds durably (checked at every execution). */
  private durable: DurableInstances | undefined;
  /** A crash armed to strike at the next checkpoint step of its kind. */
  private checkpointTrap: { readonly point: CheckpointCrashPoint; readonly onCrash: () => void } | null = null;
  /** Checkpoint metrics of the lives that ended (a crash abandons a PaxosNode with its counters). */
  private pastCheckpoints = { sent: 0, installed: 0 };

  constructor(options: SimNodeOptions) {
    this.options = options;
    this.id = options.id;
    this.clock = new SimClock(options.scheduler, options.clock);
    this.network = options.network.transportFor(this.id, () => this.state !== 'down' && !this.paused);
    this.network.onMessage((groupIndex, message) => {
      this.gateFor(this.life)(() => {
        this.receiver?.(groupIndex, message);
        if (message.kind === 'checkpointChunk') this.springTrap('receive', 3);
      });
    });
  }

  get isFollower(): boolean {
    return this.options.follower?.id === this.id;
  }

  get isUp(): boolean {
    return this.state === 'up';
  }

  localNow(): number {
    return this.clock.now();
  }

  /** Crash this node halfway through its next disk write. */
  crashDuringNextWrite(onCrash: () => void): void {
    const target = (this.options.files ?? this.options.disk).device;
    target.onNextWrite = (completeAt) => {
      const scheduler = this.options.scheduler;
      const life = this.life;
      scheduler.at(scheduler.now + (completeAt - scheduler.now) / 2, () => {
        if (life === this.life && this.state !== 'down') onCrash();
      });
    };
  }

  /** Crash this node during its next checkpoint step of the kind given. */
  crashDuringCheckpoint(point: CheckpointCrashPoint, onCrash: () => void): void {
    this.checkpointTrap = { point, onCrash };
  }

  /** Checkpoints this node sent to peers and installed, over all its lives. */
  checkpointTotals(): { sent: number; installed: number } {
    const now = this.currentCheckpoints();
    return { sent: this.pastCheckpoints.sent + now.sent, installed: this.pastCheckpoints.installed + now.installed };
  }

  nowInstanceId(groupIndex: number): number | undefined {
    return this.node?.nowInstanceId(groupIndex);
  }

  isExecuting(groupIndex: number): boolean {
    return this.node?.status(groupIndex).executing === true;
  }

  disableDiskFaults(): void {
    this.options.disk.faults = { ...this.options.disk.faults, writeErrorRate: 0 };
    this.setDiskFault(undefined);
  }

  /**
   * Fill this node's disk, make it fail (EIO), or clear either, when it runs the file store; false
   * when it does not.
   */
  setDiskFault(fault: 'full' | 'failing' | undefined): boolean {
    if (this.options.files === undefined) return false;
    this.options.files.full = fault === 'full';
    this.options.files.failing = fault === 'failing';
    return true;
  }

  /** Whether its disk is full or failing now (a fault of the file-store seeds). */
  get diskFaulty(): boolean {
    const files = this.options.files;
    return files !== undefined && (files.full || files.failing);
  }

  /** Why this node's storage refuses writes, while it does. */
  storageFailure(): string | undefined {
    return this.node?.storageFailure()?.reason;
  }

  isHalted(groupIndex: number): boolean {
    return this.node?.status(groupIndex).halted != null;
  }

  status(groupIndex: number): GroupStatus | undefined {
    return this.node?.status(groupIndex);
  }

  /** The current life's state machines of a group (empty while none were made). */
  stateMachinesOf(groupIndex: number): readonly StateMachine[] {
    return this.machines.get(groupIndex) ?? [];
  }

  async start(): Promise<void> {
    if (this.state !== 'down') return;
    const life = ++this.life;
    this.state = 'starting';
    this.receiver = undefined;
    this.machines.clear();
    this.options.trace(`n${this.id} start life ${life}`);
    const gate = this.gateFor(life);
    try {
      const { store, durable } = DurableInstances.watch(await this.openStore(gate));
      if (life !== this.life) return;
      this.durable = durable;
      for (let groupIndex = 0; groupIndex < this.options.groupCount; groupIndex++) {
        this.options.executions.onLifeStart(this.id, groupIndex);
      }
      const node = await PaxosNode.start(this.nodeOptions(life, gate, store));
      if (life !== this.life) return;
      this.node = node;
    } catch (error) {
      if (life !== this.life) return;
      if (error instanceof PaxosError && error.code === 'STORAGE_UNAVAILABLE') {
        // No room to start (its disk is full): the process exits, and a supervisor tries again.
        this.options.trace(`n${this.id} cannot start: ${error.message}`);
        this.state = 'down';
        this.options.scheduler.after(RESTART_WHEN_FULL_MS, () => {
          if (this.life === life) void this.start();
        });
        return;
      }
      this.options.onFatal(error);
      return;
    }
    this.state = 'up';
    this.scheduleSnapshots(life);
    this.options.trace(`n${this.id} up at ${Array.from({ length: this.options.groupCount },
      (_, groupIndex) => this.nowInstanceId(groupIndex)).join(',')}`);
  }

  crash(): { lostWrites: number; torn: boolean } {
    // Everything the old life asked for is dropped by its gate from now on (state 'down', and the
    // next start begins a new life); its PaxosNode is abandoned, not stopped.
    const ended = this.currentCheckpoints();
    this.pastCheckpoints = {
      sent: this.pastCheckpoints.sent + ended.sent, installed: this.pastCheckpoints.installed + ended.installed,
    };
    this.checkpointTrap = null;
    this.state = 'down';
    this.paused = false;
    this.heldWhilePaused = [];
    this.node = undefined;
    this.receiver = undefined;
    this.leaseVersions.clear();
    const calls = [...this.calls];
    this.calls.clear();
    for (const fail of calls) {
      fail(new PaxosError('STOPPED', `node ${this.id} crashed`, { mayBeChosen: true }));
    }
    this.options.leases.releaseAll(this.id, this.options.scheduler.now);
    // Under the file store, what the crash loses is the lazy file system's memory, gone with the process.
    const outcome = this.options.files === undefined ? this.options.disk.crash() : { lostWrites: 0, torn: false };
    this.options.trace(`n${this.id} crash (lost ${outcome.lostWrites} writes not yet durable${outcome.torn ? ', torn tail' : ''})`);
    return outcome;
  }

  pause(): void {
    if (this.state === 'down' || this.paused) return;
    this.paused = true;
    this.options.trace(`n${this.id} pause`);
  }

  /** Run what arrived while paused (messages, disk completions, the timer), in arrival order. */
  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.options.trace(`n${this.id} resume`);
    const held = this.heldWhilePaused;
    this.heldWhilePaused = [];
    for (const run of held) run();
  }

  propose(
    groupIndex: number, stateMachineId: number, payload: Uint8Array, timeoutMs: number, marker?: ProposalMarker,
  ): Promise<NodeProposeResult> {
    const node = this.running();
    if (node === undefined) return Promise.reject(new PaxosError('STOPPED', `node ${this.id} is not running`, NOT_CHOSEN));
    return this.call(node.propose(groupIndex, payload, { stateMachineId, timeoutMs, context: marker }));
  }

  /** The voting members of a group as this node has executed them (undefined while not up). */
  members(groupIndex: number): readonly number[] | undefined {
    return this.node?.members(groupIndex).members.map((member) => member.id);
  }

  membershipVersion(groupIndex: number): number {
    return this.node?.members(groupIndex).version ?? -2;
  }

  /**
   * Propose a new membership for a group against the version this node has: one member added,
   * removed or replaced, through the node's public methods. The outcome does not matter here.
   */
  proposeMembership(groupIndex: number, members: readonly number[]): Promise<unknown> {
    const node = this.running();
    if (node === undefined) return Promise.resolve();
    const current = node.members(groupIndex);
    const ids = current.members.map((member) => member.id);
    const added = members.filter((id) => !ids.includes(id));
    const removed = ids.filter((id) => !members.includes(id));
    this.options.trace(`n${this.id} g${groupIndex} proposes members {${members.join(',')}} against version ` +
      `${current.version}`);
    const options = { timeoutMs: MEMBERSHIP_TIMEOUT_MS };
    let change: Promise<Membership>;
    if (added.length === 1 && removed.length === 1) {
      change = node.changeMember(groupIndex, removed[0] as number, address(added[0] as number), options);
    } else if (added.length === 1 && removed.length === 0) {
      change = node.addMember(groupIndex, address(added[0] as number), options);
    } else if (added.length === 0 && removed.length === 1) {
      change = node.removeMember(groupIndex, removed[0] as number, options);
    } else {
      throw new Error(`the simulator changes one member at a time: {${ids.join(',')}} to {${members.join(',')}}`);
    }
    return change.catch(() => undefined);
  }

  /** Whether this node believes it holds some group's master lease. */
  get holdsMasterLease(): boolean {
    const node = this.node;
    return node !== undefined && this.groups().some((groupIndex) => node.isMaster(groupIndex));
  }

  /** Drop the lease of every group this node is master of; returns how many it dropped. */
  dropMaster(): number {
    const node = this.node;
    if (node === undefined) return 0;
    let dropped = 0;
    for (const groupIndex of this.groups()) {
      if (!node.isMaster(groupIndex)) continue;
      node.dropMaster(groupIndex);
      this.options.leases.release(groupIndex, this.id, this.options.scheduler.now);
      this.options.trace(`n${this.id} g${groupIndex} drops the master lease`);
      dropped++;
    }
    return dropped;
  }

  /**
   * Tell the lease checker about every lease this node believes it holds now, until when in true
   * time. The simulator calls it after every event, so a belief is seen the moment a bid gives it
   * and whenever the node wakes.
   */
  reportLeases(): void {
    const node = this.node;
    if (node === undefined) return;
    for (const groupIndex of this.groups()) {
      const info = node.master(groupIndex);
      if (info === undefined) continue;
      if (info.nodeId !== this.id) {
        this.options.leases.view(groupIndex, this.id, info.nodeId, info.version,
          this.clock.trueTimeOf(info.leaseExpiresAt));
        continue;
      }
      if (this.leaseVersions.get(groupIndex) !== info.version) {
        this.leaseVersions.set(groupIndex, info.version);
        this.options.trace(`n${this.id} g${groupIndex} holds the master lease (version ${info.version})`);
      }
      this.options.leases.hold(groupIndex, this.id, this.options.scheduler.now,
        this.clock.trueTimeOf(info.leaseExpiresAt), info.version);
    }
  }

  /** The node, when it is up and not paused (a paused process takes no calls). */
  private running(): PaxosNode | undefined {
    return this.isUp && !this.paused ? this.node : undefined;
  }

  private call<T>(promise: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.calls.add(reject);
      promise.then((value) => {
        this.calls.delete(reject);
        resolve(value);
      }, (error: unknown) => {
        this.calls.delete(reject);
        reject(error);
      });
    });
  }

  private groups(): number[] {
    return Array.from({ length: this.options.groupCount }, (_, groupIndex) => groupIndex);
  }

  private async openStore(gate: ProcessGate): Promise<LogStore> {
    const files = this.options.files;
    if (files === undefined) return this.options.disk.open(gate);
    return await FileLogStore.open({
      directory: '/node', segmentBytes: 64 * 1024,
      fileSystem: new LazyFileSystem({ inner: files.open(gate), writeback: this.options.writeback ?? 'in-order' }),
      // The end of the current event's turn, as setImmediate is on a real loop, but in a fixed order.
      deferFlush: queueMicrotask,
      // Durable writes on the loop's thread, as a node makes them by default, in the seeds that ask
      // for it; timed on simulated time, where they take none, so the choice never depends on the host.
      inlineWriteBytes: this.options.inlineWrites === true ? undefined : 0,
      inlineWriteClock: () => this.options.scheduler.now,
    });
  }

  private nodeOptions(life: number, gate: ProcessGate, store: LogStore): OptionsWithTestFaults {
    const { options } = this;
    const { follower } = options;
    const isCurrent = (): boolean => life === this.life;
    return {
      nodeId: this.id,
      members: options.members.map(address),
      followers: follower === null ? [] : [{ ...address(follower.id), follows: follower.follows }],
      groups: options.groupCount,
      store,
      transport: {
        send: (groupIndex, to, message) => {
          if (!isCurrent()) return;
          this.network.send(groupIndex, to, message);
          if (message.kind === 'checkpointChunk') this.springTrap('send', 3);
        },
        onMessage: (handler) => {
          if (isCurrent()) this.receiver = handler;
        },
      },
      clock: this.clock,
      timers: simTimerHost(options.scheduler, this.clock, gate),
      random: options.random.fork(),
      stateMachines: (groupIndex) => this.stateMachines(life, groupIndex),
      maxBatchCount: options.maxBatchCount,
      maxQueuedProposals: 64,
      maxQueuedBytes: 1 << 20,
      maxBatchBytes: 1 << 20,
      ...(options.timing === undefined ? {} : { timing: options.timing }),
      ...(options.master === null || this.isFollower ? {} : {
        master: { groups: 'all', leaseMs: options.master.leaseMs, driftBound: options.master.driftBound },
      }),
      logger: process.env.MULTIPAXOS_SIM_LOG === '1' ? traceLogger(this.id, options.trace) : SILENT_LOGGER,
      ...(options.checkpoints === undefined ? {} : {
        checkpointTransfer: SIM_CHECKPOINT_TRANSFER,
        // The node's own cleaner, with a small hold: nodes that fall behind must install a snapshot.
        logCleaning: {
          holdInstances: options.checkpoints.settings.holdInstances,
          intervalMs: options.checkpoints.settings.cleanIntervalMs,
        },
      }),
      onMembershipChange: (groupIndex, next) => {
        if (!isCurrent()) return;
        const ids = next.members.map((member) => member.id);
        options.agreement.noteMembership(groupIndex, next.version, ids);
        options.trace(`n${this.id} g${groupIndex} members {${ids.join(',')}} from version ${next.version}`);
      },
      onHalt: (groupIndex, halt) => {
        if (!isCurrent()) return;
        // A broken invariant is a bug; a storage error or a divergence is the simulator's to judge.
        if (halt.cause !== undefined) options.onFatal(halt.cause);
        else options.onHalt(this.id, groupIndex, halt);
      },
      [NODE_TEST_FAULTS]: {
        core: options.coreFaults, driver: options.driverFaults, masterIgnoresDrift: options.master?.ignoreDrift,
      },
    };
  }

  /** Runs `run` for process life `life` only: never after a crash, and not while paused. */
  private gateFor(life: number): ProcessGate {
    return (run) => {
      if (life !== this.life || this.state === 'down') return;
      if (this.paused) this.heldWhilePaused.push(run);
      else run();
    };
  }

  /** What a life's state machines keep their snapshots with (undefined: checkpoints are off). */
  private snapshotHost(life: number): SnapshotHost | undefined {
    const checkpoints = this.options.checkpoints;
    if (checkpoints === undefined) return undefined;
    const { shelf, digests, settings, random } = checkpoints;
    const { scheduler, executions } = this.options;
    const gate = this.gateFor(life);
    const where = (groupIndex: number): string => `node ${this.id} (life ${life}) group ${groupIndex}`;
    return {
      read: (groupIndex, machineId) => shelf.read(groupIndex, machineId),
      save: (groupIndex, machineId, snapshot, kind) => {
        const extraMs = random.float() * settings.saveMs;
        this.springTrap(kind === 'snapshot' ? 'save' : 'install', extraMs);
        this.options.trace(`n${this.id} g${groupIndex} sm${machineId} saves a snapshot at ${snapshot.instanceId} ` +
          `(${kind})`);
        return shelf.save(scheduler, this.device, gate, groupIndex, machineId, snapshot, extraMs);
      },
      reportBeforeDurable: checkpoints.reportBeforeDurable,
      executed: (groupIndex, machineId, instanceId, state) => {
        digests.executed(where(groupIndex), groupIndex, machineId, instanceId, state);
      },
      restored: (groupIndex, machineId, snapshot, how) => {
        this.options.trace(`n${this.id} g${groupIndex} sm${machineId} ${how === 'start' ? 'starts from' : 'installed'} ` +
          `a snapshot at ${snapshot.instanceId}`);
        digests.restored(where(groupIndex), groupIndex, machineId, snapshot, how);
        executions.onRestored({ node: this.id, life, groupIndex }, machineId, snapshot.instanceId);
      },
    };
  }

  /** The device this node's log (and its snapshots) live on: what a crash mid-write interrupts. */
  private get device(): SimDevice {
    return (this.options.files ?? this.options.disk).device;
  }

  /** A crash armed for this checkpoint step strikes within `withinMs` (before the step completes). */
  private springTrap(point: CheckpointCrashPoint, withinMs: number): void {
    const trap = this.checkpointTrap;
    const random = this.options.checkpoints?.random;
    if (trap === null || trap.point !== point || random === undefined) return;
    this.checkpointTrap = null;
    const life = this.life;
    this.options.trace(`n${this.id} crash armed for checkpoint step ${point}`);
    this.options.scheduler.after(random.float() * withinMs, () => {
      if (life === this.life && this.state !== 'down') trap.onCrash();
    });
  }

  /**
   * Every so often (at random, from the node's checkpoint stream), each group's state machines save a
   * snapshot at the instance before the current one, when nothing is executing: every instance up to
   * there is then executed in full, none half way through a batch.
   */
  private scheduleSnapshots(life: number): void {
    const checkpoints = this.options.checkpoints;
    if (checkpoints === undefined) return;
    const gap = checkpoints.settings.snapshotGapMs * (0.5 + checkpoints.random.float());
    this.options.scheduler.after(gap, () => this.gateFor(life)(() => {
      const node = this.node;
      if (node === undefined || !this.isUp) return;
      for (let groupIndex = 0; groupIndex < this.options.groupCount; groupIndex++) {
        const status = node.status(groupIndex);
        const at = node.nowInstanceId(groupIndex) - 1;
        if (status.executing || status.halted != null || at < 0) continue;
        for (const machine of this.stateMachinesOf(groupIndex)) {
          if (machine instanceof DigestStateMachine) void machine.takeSnapshot(at);
        }
      }
      this.scheduleSnapshots(life);
    }));
  }

  private currentCheckpoints(): { sent: number; installed: number } {
    const groups = this.node?.metrics().groups ?? [];
    return {
      sent: groups.reduce((sum, group) => sum + group.checkpointsSent, 0),
      installed: groups.reduce((sum, group) => sum + group.checkpointsInstalled, 0),
    };
  }

  /**
   * The application's state machines for one life, each wrapped: an execution may fail on purpose
   * (it must be retried, never skipped), and every one that succeeds is shown to the checker with
   * its result. Their checkpoint methods, if they have them, are passed on as they are.
   */
  private stateMachines(life: number, groupIndex: number): StateMachine[] {
    const { application, executions, executeFailureRate, random } = this.options;
    const machines = application.stateMachines(groupIndex, { id: this.id, life }, this.snapshotHost(life));
    if (life === this.life) this.machines.set(groupIndex, machines);
    return machines.map((machine) => ({
      id: machine.id,
      ...checkpointMethodsOf(machine),
      execute: (given: ExecuteInput): unknown => {
        // Start-up replay is not failed on purpose: a real process would exit and be restarted.
        if (this.state === 'up' && executeFailureRate > 0 && random.chance(executeFailureRate)) {
          throw new Error(`simulated failure of state machine ${machine.id}`);
        }
        // The simulator's marker is its own business: the state machine sees no context, as on other nodes.
        const marker = given.context instanceof ProposalMarker ? given.context : undefined;
        const input = marker === undefined ? given : { ...given, context: undefined };
        // Checked before the execution: a state machine that saves snapshots may persist it at once.
        const early = life === this.life ? this.durable?.checkExecution(groupIndex, input.instanceId) : undefined;
        if (early !== undefined) this.options.onViolation(`node ${this.id} (life ${life}) group ${groupIndex}: ${early}`);
        const executed = (result: unknown): unknown => {
          if (marker !== undefined) {
            if (marker.executed) {
              this.options.onViolation(`node ${this.id} (life ${life}) group ${groupIndex}: ${marker.caller} ` +
                `executed again at instance ${input.instanceId}, on the node that proposed it`);
            }
            marker.executed = true;
          }
          executions.onExecute({ node: this.id, life, groupIndex }, input.instanceId,
            frameValue(machine.id, input.value), result);
          return result;
        };
        const failed = (error: unknown): never => {
          this.options.onViolation(`node ${this.id} (life ${life}) group ${groupIndex}: state machine ` +
            `${machine.id} threw executing instance ${input.instanceId}: ${describeError(error)}`);
          throw error;
        };
        let result: unknown;
        try {
          result = machine.execute(input);
        } catch (error) {
          return failed(error);
        }
        // A synchronous execute stays synchronous, so the built-in run's event order is unchanged.
        return result instanceof Promise ? result.then(executed, failed) : executed(result);
      },
    }));
  }
}

/**
 * The node's log lines in the trace (MULTIPAXOS_SIM_LOG=1 with --trace): for debugging a seed. It
 * changes the trace hash, never the run.
 */
function traceLogger(id: number, trace: (line: string) => void): Logger {
  const line = (level: string) => (message: string, fields?: Record<string, unknown>): void =>
    trace(`n${id} ${level} ${message} ${JSON.stringify(fields ?? {})}`);
  return { info: line('INFO'), warn: line('WARN'), error: line('ERROR') };
}

/** A state machine's checkpoint methods, bound, for a wrapper that must offer exactly what it offers. */
function checkpointMethodsOf(machine: StateMachine): Partial<StateMachine> {
  const methods: { -readonly [K in keyof StateMachine]?: StateMachine[K] } = {};
  if (machine.checkpointInstanceId !== undefined) {
    methods.checkpointInstanceId = machine.checkpointInstanceId.bind(machine);
  }
  if (machine.openSnapshot !== undefined) methods.openSnapshot = machine.openSnapshot.bind(machine);
  if (machine.installSnapshot !== undefined) methods.installSnapshot = machine.installSnapshot.bind(machine);
  return methods;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Simulated nodes need no real address; the membership records carry a placeholder. */
function address(id: number): MemberAddress {
  return { id, host: `n${id}`, port: 1 };
}
