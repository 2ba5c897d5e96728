/**
 * PaxosNode: the library as a service embeds it (PhxPaxos node.h in a Node idiom). It owns one
 * durable log store, one transport and one timer, and runs every group of the node over them: a
 * GroupCore and a GroupDriver per group, each with its own state machines and proposal queue.
 *
 *   const node = await PaxosNode.start({ nodeId: 1, members, dataDir, stateMachines: [echo] });
 *   const { instanceId, batchIndex, result } = await node.propose(0, 'hello');
 *   await node.stop();
 */
import { hasErrorCode, NOT_CHOSEN, PaxosError, type PaxosErrorCode } from '../errors.js';
import { FileLogStore } from '../io/file-log-store.js';
import type { GroupDriver } from '../runtime/group-driver.js';
import type { GroupStatus } from '../core/group-core.js';
import { isCheckpointMessage, type MessageKind } from '../core/messages.js';
import { randomIncarnation } from '../core/proposal-identity.js';
import type { Clock, LogStore, Logger, StateMachine, Transport } from '../runtime/interfaces.js';
import type { MasterInfo } from '../runtime/master/master-state-machine.js';
import type { ProposeSuccess } from '../runtime/proposal-queue.js';
import {
  encodeMembership, MAX_HOST_BYTES, type Member, type Membership,
} from '../runtime/membership/membership-codec.js';
import type { MembershipOutcome } from '../runtime/membership/membership-state-machine.js';
import { frameValue, NO_STATE_MACHINE_ID, SYSTEM_STATE_MACHINE_ID } from '../runtime/value-frame.js';
import type { Random } from '../util/random.js';
import { CRYPTO_RANDOM } from './crypto-random.js';
import { installCheckpoint } from './checkpoint-install.js';
import { GroupCheckpoints } from './group-checkpoints.js';
import {
  buildGroupRuntime, validateStateMachine, type ExecutionProgress, type GroupRuntime, type GroupRuntimeContext,
} from './group-runtime.js';
import type { VerifiedCheckpoint } from '../runtime/checkpoint/checkpoint-receiver.js';
import { expandInstanceValue, type InstanceValue } from './instance-values.js';
import {
  resolveNodeOptions, type ClosableTransport, type NodeAddress, type PaxosNodeOptions, type ResolvedNodeOptions,
} from './node-options.js';
import { NodeTimer, type TimedGroup } from './node-timer.js';
import { sendsAroundInlineWrite } from './sends-around-inline-write.js';
import { StorageRecovery, type ResumableStore, type StorageFailure } from './storage-recovery.js';
import { openTcpTransport, type ApplicationChannel, type NodeTransport } from './node-transport.js';
import { timeoutTimerHost } from './timeout-timer-host.js';
import { LogCleaner, type CleanableGroup } from '../runtime/log-cleaner.js';

export interface NodeProposeOptions {
  /** Give up after this many ms (default: the node's proposeTimeoutMs). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Handed to the state machine when it executes this value on this node (PhxPaxos SMCtx). */
  readonly context?: unknown;
  /** The state machine to address; may be left out when the group has exactly one. */
  readonly stateMachineId?: number;
}

/** Options of addMember, removeMember and changeMember, which wait for the change to be chosen. */
export interface MembershipChangeOptions {
  /** Give up after this many ms (default: the node's proposeTimeoutMs). */
  readonly timeoutMs?: number;
  /** Aborting gives up waiting: ABORTED, with mayBeChosen true once the change was sent. */
  readonly signal?: AbortSignal;
}

/** A proposal's outcome: where it was chosen, its place in that instance's batch, and the result. */
export type NodeProposeResult = ProposeSuccess;

export interface GroupMetrics {
  readonly groupIndex: number;
  readonly nowInstanceId: number;
  readonly minChosenInstanceId: number;
  /** Instances this node deleted from the group's log since it started (log cleaning). */
  readonly instancesCleaned: number;
  readonly queuedProposals: number;
  readonly queuedBytes: number;
  /** Values this node handed its core (a batch counts once), and the caller values they carried. */
  readonly valuesProposed: number;
  readonly proposalsSent: number;
  /** Log writes, and how many of them were fsynced. */
  readonly logWrites: number;
  readonly syncedLogWrites: number;
  /** Instances executed here (values learned by catch-up included). */
  readonly instancesExecuted: number;
  /** Paxos messages by kind (catch-up is askForLearn, learnValue and their replies). */
  readonly messagesIn: Readonly<Partial<Record<MessageKind, number>>>;
  readonly messagesOut: Readonly<Partial<Record<MessageKind, number>>>;
  /** The master this node sees (0: none), and whether it is this node. */
  readonly masterNodeId: number;
  readonly isMaster: boolean;
  readonly halted: string | null;
  /** Checkpoint transfers: sent to peers, installed here, installs that failed, transfers given up. */
  readonly checkpointsSent: number;
  readonly checkpointsInstalled: number;
  readonly checkpointsFailed: number;
  readonly checkpointTransfersAbandoned: number;
  readonly checkpointBytesSent: number;
  readonly checkpointBytesReceived: number;
}

export interface NodeMetrics {
  readonly nodeId: number;
  readonly proposalsSucceeded: number;
  readonly proposalsFailed: Readonly<Partial<Record<PaxosErrorCode, number>>>;
  readonly groups: readonly GroupMetrics[];
  /** The transport's counters, when it keeps any. */
  readonly transport: Readonly<Record<string, unknown>> | undefined;
  /** Bytes of log files on disk (all groups share them), when the store can tell. */
  readonly logDiskBytes: number | undefined;
  /** Writes the log store made to its files, every group's records together, when the store can tell. */
  readonly logFlushes: number | undefined;
  /** Why the node's storage refuses writes (every group halted until it resumes); undefined: it takes them. */
  readonly storage: StorageFailure | undefined;
  /** Times the node took writes again, by itself, after its storage failed. */
  readonly storageResumes: number;
  /**
   * The reason of the node's last storage failure, kept after it resumed (undefined before any):
   * a label that stays put, where `storage` comes and goes.
   */
  readonly lastStorageFailure: string | undefined;
}

/** setTimeout's limit. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const MONOTONIC_CLOCK: Clock = { now: () => performance.now() };

export class PaxosNode {
  readonly nodeId: number;
  private readonly options: ResolvedNodeOptions;
  private readonly store: LogStore;
  private readonly ownsStore: boolean;
  private readonly transport: NodeTransport;
  /** By group index; a checkpoint install replaces a group's runtime in place. */
  private readonly groups: GroupRuntime[];
  private readonly checkpoints: readonly GroupCheckpoints[];
  private readonly context: GroupRuntimeContext;
  private readonly installs = new Set<Promise<void>>();
  /**
   * By group index: how far a rebuild of the group executed, kept while its attempts fail (see
   * ExecutionProgress); gone once one succeeds, when the new runtime's driver knows it.
   */
  private readonly rebuildProgress = new Map<number, ExecutionProgress>();
  /** Groups whose runtime storage recovery is rebuilding: it owns them, no install may start. */
  private readonly storageRebuilds = new Set<number>();
  private readonly timer: NodeTimer;
  private readonly cleaner: LogCleaner;
  private readonly storage: StorageRecovery;
  /** Draws group identities and nonces: the injected Random, or the OS's. */
  private readonly random: Random;
  private proposalsSucceeded = 0;
  private readonly proposalsFailed: Partial<Record<PaxosErrorCode, number>> = {};
  private stopping: Promise<void> | null = null;

  private constructor(parts: {
    options: ResolvedNodeOptions; store: LogStore; ownsStore: boolean; transport: NodeTransport;
    groups: GroupRuntime[]; checkpoints: readonly GroupCheckpoints[]; context: GroupRuntimeContext; timer: NodeTimer;
    random: Random; cleaner: LogCleaner; storage: StorageRecovery;
  }) {
    this.cleaner = parts.cleaner;
    this.storage = parts.storage;
    this.options = parts.options;
    this.nodeId = parts.options.nodeId;
    this.store = parts.store;
    this.ownsStore = parts.ownsStore;
    this.transport = parts.transport;
    this.groups = parts.groups;
    this.checkpoints = parts.checkpoints;
    this.context = parts.context;
    this.timer = parts.timer;
    this.random = parts.random;
  }

  /**
   * Open the log, restore every group (replaying what the state machines do not hold), start the
   * transport, and begin. Rejects with BAD_OPTIONS, STARTUP_FAILED or STORAGE_CORRUPT.
   */
  static async start(options: PaxosNodeOptions): Promise<PaxosNode> {
    const resolved = resolveNodeOptions(options);
    const clock = resolved.clock ?? MONOTONIC_CLOCK;
    // Everything that reads time, arms a timer or draws randomness gets it from here: inject all
    // three (with a store and a transport) and the node is deterministic.
    const random = resolved.random ?? CRYPTO_RANDOM;
    const timers = resolved.timers ?? timeoutTimerHost(clock);
    // This life's part of every proposal's identity: fresh bits from the OS, or from the injected stream.
    const incarnation = randomIncarnation(random);
    const ownsStore = resolved.store === undefined;
    // The store blocks the loop for a small durable write: the transport sends around it (see
    // sendsAroundInlineWrite). The transport is opened after the store, hence the indirection.
    const sendQueued = { now: (): void => {} };
    const store = resolved.store ?? await FileLogStore.open({
      directory: resolved.dataDir as string, sync: resolved.sync, logger: resolved.logger,
      segmentBytes: resolved.segmentBytes, inlineWriteBytes: resolved.inlineWriteBytes,
      beforeInlineWrite: sendsAroundInlineWrite(() => sendQueued.now()),
    });
    let transport: NodeTransport | undefined;
    try {
      const groups: GroupRuntime[] = [];
      const checkpoints: GroupCheckpoints[] = [];
      const cleaner: { current?: LogCleaner } = {};
      // Set once the node exists: a checkpoint can only arrive after start-up.
      const installer: { node?: PaxosNode } = {};
      const storage = new StorageRecovery({
        store: store as LogStore & ResumableStore, clock, logger: resolved.logger, groups: () => groups,
        rebuild: (groupIndex) => installer.node === undefined ? Promise.reject(new Error('the node is starting'))
          : installer.node.rebuildAfterStorage(groupIndex),
        busy: (groupIndex) => checkpoints[groupIndex]?.installing === true,
        haltForGood: (groupIndex, error) => {
          const driver = groups[groupIndex]?.driver;
          if (driver === undefined) return;
          driver.failFatally(error, 'could not be rebuilt after its storage resumed');
          // The user hears of it as of any group that stops for good.
          if (driver.halted?.code !== 'GROUP_HALTED') return;
          try {
            resolved.onHalt?.(groupIndex, { ...driver.halted, cause: error });
          } catch (thrown) {
            resolved.logger.error('onHalt threw; ignored', { group: groupIndex, error: String(thrown) });
          }
        },
        onTimersChanged: () => timer.changed(),
      });
      // The cleaner, checkpoint transfers and storage recovery ride the node's one timer like a
      // group, so the simulator runs them too.
      // Asked once per turn in which anything changed: one flat array, refilled in place (the timer
      // walks it at once and keeps nothing), no spread of temporaries.
      const timed: TimedGroup[] = [];
      const timer = new NodeTimer(timers, () => {
        timed.length = 0;
        for (const group of groups) {
          timed.push(group.driver);
          if (group.masterManager !== undefined) timed.push(group.masterManager);
        }
        for (const transfer of checkpoints) timed.push(transfer);
        if (cleaner.current !== undefined) timed.push(cleaner.current);
        timed.push(storage);
        return timed;
      });
      transport = resolved.transport === undefined
        ? await openTcpTransport(resolved, random) : customTransport(resolved.transport);
      const { transport: wire } = transport;
      const opened = transport;
      sendQueued.now = () => opened.flushNow?.();
      const context: GroupRuntimeContext = {
        options: resolved, store, clock, random, incarnation, send: wire.send.bind(wire),
        onTimersChanged: () => timer.changed(),
        onHalted: (_groupIndex: number, reason) => storage.onGroupHalted(reason),
        onMembershipChanged: (groupIndex: number, membership: Membership) => {
          announceMembership(wire, resolved.nodeId, groupIndex, membership, resolved.logger);
          resolved.logger.info('membership changed', {
            group: groupIndex, version: membership.version, members: membership.members.map((member) => member.id),
          });
          try {
            resolved.onMembershipChange?.(groupIndex, membership);
          } catch (error) {
            resolved.logger.error('onMembershipChange threw; ignored', { group: groupIndex, error: String(error) });
          }
        },
      };
      for (let groupIndex = 0; groupIndex < resolved.groups; groupIndex++) {
        groups.push(await buildGroupRuntime(context, groupIndex));
      }
      // The restored membership may hold members added at run time, which no option names.
      for (const { groupIndex, membership } of groups) {
        announceMembership(wire, resolved.nodeId, groupIndex, membership.membership, resolved.logger);
      }
      for (const { groupIndex } of groups) {
        checkpoints.push(new GroupCheckpoints({
          groupIndex, nodeId: resolved.nodeId, store, clock, random, logger: resolved.logger,
          timing: resolved.checkpointTransfer, runtime: () => groups[groupIndex] as GroupRuntime,
          send: (to, message) => wire.send(groupIndex, to, message),
          install: (checkpoint) => installer.node === undefined
            ? Promise.reject(new Error('the node is starting')) : installer.node.install(groupIndex, checkpoint),
          onTimersChanged: () => timer.changed(),
        }));
      }
      wire.onMessage((groupIndex, message) => {
        const group = groups[groupIndex];
        const transfer = checkpoints[groupIndex];
        if (group === undefined || transfer === undefined || transfer.installing) return;
        if (isCheckpointMessage(message)) {
          transfer.onMessage(message);
          return;
        }
        group.driver.step(message);
        if (message.kind !== 'sendNowInstanceId') return;
        const peer = group.driver.takeCheckpointRequest();
        if (peer !== null) transfer.needCheckpoint(peer);
      });
      // Groups are looked up at each pass: a checkpoint install replaces a group's runtime.
      cleaner.current = new LogCleaner({
        store, clock, logger: resolved.logger, settings: resolved.logCleaning,
        groups: groups.map(({ groupIndex }) => cleanableGroup(() => groups[groupIndex] as GroupRuntime,
          () => checkpoints[groupIndex]?.installing === true, () => checkpoints[groupIndex]?.sender.keepLogFrom())),
        onTimersChanged: () => timer.changed(),
      });
      for (const group of groups) group.driver.tick();
      timer.changed();
      resolved.logger.info('node started', {
        nodeId: resolved.nodeId, groups: resolved.groups, instances: groups.map((group) => group.driver.nowInstanceId),
      });
      const node = new PaxosNode({
        options: resolved, store, ownsStore, transport, groups, checkpoints, context, timer, random,
        cleaner: cleaner.current, storage,
      });
      installer.node = node;
      node.createGroupIdentities();
      return node;
    } catch (error) {
      await transport?.close?.().catch(() => {});
      if (ownsStore) await store.close().catch(() => {});
      throw error;
    }
  }

  /**
   * Propose a value to a group. Resolves once the value is chosen *and* executed here, with the
   * instance it was chosen in, its index in that instance's batch, and what its state machine's
   * `execute` returned. Rejects with a PaxosError: `mayBeChosen` says whether it may still be chosen.
   */
  propose(
    groupIndex: number, value: Uint8Array | string, options: NodeProposeOptions = {},
  ): Promise<NodeProposeResult> {
    const proposal = this.startProposal(groupIndex, value, options);
    proposal.then(() => { this.proposalsSucceeded++; }, (error: unknown) => {
      const code = error instanceof PaxosError ? error.code : 'EXECUTE_FAILED';
      this.proposalsFailed[code] = (this.proposalsFailed[code] ?? 0) + 1;
    });
    return proposal;
  }

  /** The instance this node is deciding in the group (every instance below it is chosen here). */
  nowInstanceId(groupIndex: number): number {
    return this.group(groupIndex).driver.nowInstanceId;
  }

  /**
   * What the group's core is doing (proposer phase, promise, learning, executing) and whether the
   * group halted (storage error, divergence or broken invariant), for diagnostics and tests.
   */
  status(groupIndex: number): GroupStatus {
    const { driver } = this.group(groupIndex);
    return { ...driver.status(), halted: driver.halted };
  }

  /** The lowest instance whose value this node still holds. */
  minChosenInstanceId(groupIndex: number): number {
    return this.group(groupIndex).driver.minChosenInstanceId;
  }

  /**
   * Register a state machine with one group, or with every group when `groupIndex` is left out.
   * Values for it that were chosen before it was added wait (their execution is retried) until it is.
   */
  addStateMachine(stateMachine: StateMachine): void;
  addStateMachine(groupIndex: number, stateMachine: StateMachine): void;
  addStateMachine(first: number | StateMachine, second?: StateMachine): void {
    const stateMachine = typeof first === 'number' ? second : first;
    validateStateMachine(stateMachine);
    if (stateMachine.checkpointInstanceId !== undefined) {
      // Start-up decided where replay begins from the checkpoints it saw; a later one cannot be honoured.
      throw new PaxosError('BAD_OPTIONS', `state machine ${stateMachine.id} keeps a checkpoint: give it in the ` +
        'stateMachines option, so start-up can replay what it does not hold', NOT_CHOSEN);
    }
    const groups = typeof first === 'number' ? [this.group(first)] : this.groups;
    for (const group of groups) group.registry.add(stateMachine);
  }

  /**
   * The group's membership as this node has executed it: the group identity (0 until the first
   * change), the version (the instance of the last change; -1 for the configured members) and the
   * voting members with their addresses.
   */
  members(groupIndex: number): Membership {
    return this.group(groupIndex).membership.membership;
  }

  /** Add a voting member (PhxPaxos AddMember). Rejects with MEMBERSHIP_CONFLICT if the membership changed meanwhile. */
  async addMember(groupIndex: number, member: Member, options: MembershipChangeOptions = {}): Promise<Membership> {
    const current = this.members(groupIndex);
    const added = validateMember(member);
    if (current.members.some((existing) => existing.id === added.id)) {
      throw new PaxosError('ALREADY_MEMBER', `node ${added.id} is already a member of group ${groupIndex}`, NOT_CHOSEN);
    }
    this.refuseFollower(added.id);
    return await this.changeMembership(groupIndex, current, [...current.members, added], options);
  }

  /** Remove a voting member (PhxPaxos RemoveMember). */
  async removeMember(groupIndex: number, nodeId: number, options: MembershipChangeOptions = {}): Promise<Membership> {
    const current = this.members(groupIndex);
    if (!current.members.some((member) => member.id === nodeId)) {
      throw new PaxosError('NO_SUCH_MEMBER', `node ${nodeId} is not a member of group ${groupIndex}`, NOT_CHOSEN);
    }
    if (current.members.length === 1) {
      throw new PaxosError('LAST_MEMBER', 'the last member cannot be removed', NOT_CHOSEN);
    }
    const remaining = current.members.filter((member) => member.id !== nodeId);
    return await this.changeMembership(groupIndex, current, remaining, options);
  }

  /** Replace one member by another in one change (PhxPaxos ChangeMember). */
  async changeMember(
    groupIndex: number, fromNodeId: number, to: Member, options: MembershipChangeOptions = {},
  ): Promise<Membership> {
    const current = this.members(groupIndex);
    const added = validateMember(to);
    if (!current.members.some((member) => member.id === fromNodeId)) {
      throw new PaxosError('NO_SUCH_MEMBER', `node ${fromNodeId} is not a member of group ${groupIndex}`, NOT_CHOSEN);
    }
    if (current.members.some((member) => member.id === added.id)) {
      throw new PaxosError('ALREADY_MEMBER', `node ${added.id} is already a member of group ${groupIndex}`, NOT_CHOSEN);
    }
    this.refuseFollower(added.id);
    const next = [...current.members.filter((member) => member.id !== fromNodeId), added];
    return await this.changeMembership(groupIndex, current, next, options);
  }

  /**
   * The group's master as this node sees it, or undefined when no lease is live here.
   * `leaseExpiresAt` is on this node's monotonic clock (performance.now()).
   */
  master(groupIndex: number): MasterInfo | undefined {
    return this.group(groupIndex).master.master();
  }

  /** This node follows a member: it learns and executes every chosen value, and never votes or proposes. */
  get isFollower(): boolean {
    return this.options.isFollower;
  }

  /** The configured followers: each one's id and the member it follows. */
  followers(): readonly { readonly id: number; readonly follows: number }[] {
    return this.options.followers.map(({ id, follows }) => ({ id, follows }));
  }

  /** Whether this node holds the group's master lease now (always false where it does not bid). */
  isMaster(groupIndex: number): boolean {
    // A halted group can renew no lease and serve nothing: it is nobody's master here.
    const group = this.group(groupIndex);
    return group.driver.halted === null && group.master.isMaster();
  }

  /** PhxPaxos SetMasterLease: the lease of this node's bids from the next one on (at least 1,000 ms). */
  setMasterLease(groupIndex: number, leaseMs: number): void {
    if (!Number.isInteger(leaseMs) || leaseMs < 1_000 || leaseMs > 2 ** 31 - 1) {
      throw new PaxosError('BAD_OPTIONS',
        `a master lease must be an integer of at least 1000 ms, got ${leaseMs}`, NOT_CHOSEN);
    }
    this.electingGroup(groupIndex).setLease(leaseMs);
  }

  /**
   * Stop being master: this node steps down at once on its own side and makes no bid for two
   * leases. The others still count the lease they granted, then elect another master.
   */
  dropMaster(groupIndex: number): void {
    this.electingGroup(groupIndex).drop();
  }

  /**
   * The values chosen at one instance (batches expanded). Rejects with INSTANCE_UNAVAILABLE when
   * the instance is not chosen here yet or was cleaned from the log.
   */
  async instanceValues(groupIndex: number, instanceId: number): Promise<InstanceValue[]> {
    if (this.stopping !== null) throw new PaxosError('STOPPED', 'the node is stopped', NOT_CHOSEN);
    const driver = this.group(groupIndex).driver;
    if (!Number.isSafeInteger(instanceId) || instanceId < 0) {
      throw new PaxosError('INSTANCE_UNAVAILABLE', `instance ${instanceId} is not a valid instance id`, NOT_CHOSEN);
    }
    if (instanceId >= driver.nowInstanceId) {
      throw new PaxosError('INSTANCE_UNAVAILABLE', `instance ${instanceId} is not chosen here yet ` +
        `(group ${groupIndex} is at ${driver.nowInstanceId})`, NOT_CHOSEN);
    }
    if (instanceId < driver.minChosenInstanceId) {
      throw new PaxosError('INSTANCE_UNAVAILABLE', `instance ${instanceId} was cleaned from the log ` +
        `(group ${groupIndex} keeps instances from ${driver.minChosenInstanceId})`, NOT_CHOSEN);
    }
    const record = await this.store.get(groupIndex, instanceId);
    if (record === undefined) {
      throw new PaxosError('INSTANCE_UNAVAILABLE',
        `instance ${instanceId} of group ${groupIndex} has no record`, NOT_CHOSEN);
    }
    try {
      return expandInstanceValue(record.value);
    } catch (error) {
      throw new PaxosError('STORAGE_CORRUPT',
        `group ${groupIndex} instance ${instanceId}: ${String(error)}`, NOT_CHOSEN);
    }
  }

  /** PhxPaxos SetLogSync: fsync votes and learned values (true, the default) or not, on every group. */
  setLogSync(enabled: boolean): void {
    if (typeof enabled !== 'boolean') throw new PaxosError('BAD_OPTIONS', 'setLogSync takes true or false', NOT_CHOSEN);
    for (const { driver } of this.groups) driver.setSyncWrites(enabled);
    // A store may also have its own switch (the file store was opened with the `sync` option).
    this.store.setSync?.(enabled);
  }

  /**
   * Opaque bytes to and from peers over this node's own connections, batched with its Paxos
   * messages (node-transport.ts); undefined with a custom transport.
   */
  get applicationChannel(): ApplicationChannel | undefined {
    return this.transport.application;
  }

  /** The address the transport listens on (its real port when `listen.port` was 0). */
  address(): NodeAddress | undefined {
    return this.transport.address?.();
  }

  metrics(): NodeMetrics {
    return {
      nodeId: this.nodeId,
      proposalsSucceeded: this.proposalsSucceeded,
      proposalsFailed: { ...this.proposalsFailed },
      groups: this.groups.map(({ driver, master }, index) => ({
        ...this.checkpointMetrics(index),
        groupIndex: driver.groupIndex,
        nowInstanceId: driver.nowInstanceId,
        minChosenInstanceId: driver.minChosenInstanceId,
        instancesCleaned: this.cleaner.instancesCleaned(driver.groupIndex),
        queuedProposals: driver.queueDepth.proposals,
        queuedBytes: driver.queueDepth.bytes,
        valuesProposed: driver.counters.valuesProposed,
        proposalsSent: driver.counters.proposalsSent,
        logWrites: driver.counters.logWrites,
        syncedLogWrites: driver.counters.syncedLogWrites,
        instancesExecuted: driver.counters.instancesExecuted,
        messagesIn: { ...driver.counters.messagesIn },
        messagesOut: { ...driver.counters.messagesOut },
        masterNodeId: master.master()?.nodeId ?? 0,
        isMaster: driver.halted === null && master.isMaster(),
        halted: driver.halted?.code ?? null,
      })),
      transport: this.transport.stats?.(),
      logDiskBytes: this.store.diskBytes?.(),
      logFlushes: this.store.flushes?.(),
      storage: this.storage.failure,
      storageResumes: this.storage.resumes,
      lastStorageFailure: this.storage.lastReason,
    };
  }

  /**
   * Why this node's storage refuses writes (a full disk, a read-only or failing file system), or
   * undefined while it takes them. Meanwhile every group is halted with STORAGE_UNAVAILABLE; the
   * node resumes by itself once writes work again (see storage-recovery.ts).
   */
  storageFailure(): StorageFailure | undefined {
    return this.storage.failure;
  }

  /**
   * Stop gracefully: pending proposals reject with STOPPED (mayBeChosen when already sent), the
   * write in flight completes, sockets end and the log is closed. Safe to call more than once.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async shutDown(): Promise<void> {
    // An install under way finishes first: it owns the group's runtime until it replaces it.
    for (const checkpoint of this.checkpoints) checkpoint.stop();
    await Promise.all([...this.installs].map((install) => install.catch(() => undefined)));
    this.storage.stop();
    await this.storage.whenIdle();
    this.timer.stop();
    for (const { driver, masterManager } of this.groups) {
      masterManager?.stop();
      driver.stop();
    }
    await Promise.all(this.groups.map(({ driver }) => driver.whenIdle()));
    await this.cleaner.stop();
    await this.transport.close?.();
    if (this.ownsStore) await this.store.close();
    this.options.logger.info('node stopped', { nodeId: this.nodeId });
  }

  private checkpointMetrics(groupIndex: number): Pick<GroupMetrics, 'checkpointsSent' | 'checkpointsInstalled' |
    'checkpointsFailed' | 'checkpointTransfersAbandoned' | 'checkpointBytesSent' | 'checkpointBytesReceived'> {
    const transfer = this.checkpoints[groupIndex];
    const sent = transfer?.sender.stats;
    const received = transfer?.receiver.stats;
    return {
      checkpointsSent: sent?.completed ?? 0,
      checkpointsInstalled: received?.installed ?? 0,
      checkpointsFailed: received?.failedInstalls ?? 0,
      checkpointTransfersAbandoned: (sent?.abandoned ?? 0) + (received?.abandoned ?? 0),
      checkpointBytesSent: sent?.bytesSent ?? 0,
      checkpointBytesReceived: received?.bytesReceived ?? 0,
    };
  }

  /** Install a verified checkpoint into a group in place (see checkpoint-install.ts). */
  private install(groupIndex: number, checkpoint: VerifiedCheckpoint): Promise<void> {
    // Once stop began, nothing may replace a group: its new runtime would outlive the store.
    if (this.stopping !== null) return Promise.reject(new PaxosError('STOPPED', 'the node is stopping', NOT_CHOSEN));
    // One owner per group: a group halted for its storage is rebuilt by storage recovery (an
    // install racing it would replace the runtime under it); the peer offers the checkpoint again
    // once the group runs and asks.
    if (this.storageRebuilds.has(groupIndex) || this.group(groupIndex).driver.halted?.code === 'STORAGE_UNAVAILABLE') {
      return Promise.reject(new PaxosError('STORAGE_UNAVAILABLE', `group ${groupIndex} is halted until its storage ` +
        'takes writes again; a checkpoint can be installed after that', NOT_CHOSEN));
    }
    const installing = installCheckpoint({
      groupIndex, store: this.store,
      current: () => this.group(groupIndex),
      quiesce: async (runtime) => {
        runtime.masterManager?.stop();
        runtime.driver.stop();
        await runtime.driver.whenIdle();
      },
      rebuild: () => this.rebuildGroup(groupIndex),
      replace: (runtime) => {
        this.replaceGroup(groupIndex, runtime);
        announceMembership(this.transport.transport, this.nodeId, groupIndex, runtime.membership.membership,
          this.options.logger);
        runtime.driver.tick();
        this.timer.changed();
        this.options.logger.info('checkpoint installed; the group resumes', {
          group: groupIndex, instanceId: runtime.driver.nowInstanceId,
        });
      },
    }, checkpoint);
    const tracked = installing.finally(() => this.installs.delete(tracked));
    this.installs.add(tracked);
    return tracked;
  }

  /**
   * A group's runtime built afresh from the store, with the same state machine objects. It gets a
   * new incarnation: the old runtime's proposals may still be chosen, and the new one starts its
   * sequence again, so without one the two could share an identity.
   */
  private async rebuildGroup(groupIndex: number): Promise<GroupRuntime> {
    const old = this.group(groupIndex);
    try {
      return await this.buildAgain(old);
    } catch (error) {
      if (hasErrorCode(error, 'STORAGE_UNAVAILABLE')) {
        // The disk refused a write: the group comes back with the storage (storage-recovery.ts).
        this.options.logger.error('the group could not restart after a checkpoint install: its storage refuses ' +
          'writes; it resumes with the storage', { group: groupIndex, error: String(error) });
        old.driver.haltForStorage({ code: 'STORAGE_UNAVAILABLE', message: `group ${groupIndex}: ${String(error)}` });
        throw error;
      }
      this.options.logger.error('the group could not restart after a checkpoint install; it stays halted until the ' +
        'node restarts', { group: groupIndex, error: String(error) });
      old.driver.failFatally(error, 'could not restart after a checkpoint install');
      throw error;
    }
  }

  /**
   * The group's runtime built from the store, with the state machine objects `old` ran, replay
   * starting above what they executed: in `old`, or in an earlier attempt that failed part way.
   */
  private async buildAgain(old: GroupRuntime): Promise<GroupRuntime> {
    const { groupIndex } = old;
    let progress = this.rebuildProgress.get(groupIndex);
    if (progress === undefined) {
      progress = { executedThrough: old.driver.executedThrough, registry: old.registry };
      this.rebuildProgress.set(groupIndex, progress);
    } else {
      progress.executedThrough = Math.max(progress.executedThrough, old.driver.executedThrough);
    }
    const runtime = await buildGroupRuntime({ ...this.context, incarnation: randomIncarnation(this.random) },
      groupIndex, old.registry.stateMachines, progress);
    this.rebuildProgress.delete(groupIndex);
    return runtime;
  }

  /**
   * After the storage failed and the store resumed: the halted group's runtime is replaced by one
   * built from the store (what is durable), keeping its state machines, under a new incarnation.
   * If that fails (the disk failed again), the old one stays halted and the next attempt retries.
   */
  private async rebuildAfterStorage(groupIndex: number): Promise<void> {
    if (this.stopping !== null) throw new PaxosError('STOPPED', 'the node is stopping', NOT_CHOSEN);
    // An install under way owns the group (it is rebuilt by it, or handed back halted): look again later.
    if (this.checkpoints[groupIndex]?.installing === true || this.storageRebuilds.has(groupIndex)) return;
    this.storageRebuilds.add(groupIndex);
    try {
      const old = this.group(groupIndex);
      old.masterManager?.stop();
      old.driver.stop();
      await old.driver.whenIdle();
      const runtime = await this.buildAgain(old);
      if (this.stopping !== null) {
        runtime.masterManager?.stop();
        runtime.driver.stop();
        return;
      }
      this.replaceGroup(groupIndex, runtime);
      announceMembership(this.transport.transport, this.nodeId, groupIndex, runtime.membership.membership,
        this.options.logger);
      runtime.driver.tick();
      this.timer.changed();
      this.options.logger.info('storage writable again; the group resumes', {
        group: groupIndex, instanceId: runtime.driver.nowInstanceId,
      });
    } finally {
      this.storageRebuilds.delete(groupIndex);
    }
  }

  /**
   * Put `runtime` in the group's place. The runtime it replaces is stopped, whoever built it: one
   * left running would go on ticking, and could persist acceptor records beside the new one.
   */
  private replaceGroup(groupIndex: number, runtime: GroupRuntime): void {
    const previous = this.groups[groupIndex];
    if (previous !== undefined && previous !== runtime) {
      previous.masterManager?.stop();
      previous.driver.stop();
    }
    this.groups[groupIndex] = runtime;
  }

  private startProposal(
    groupIndex: number, value: Uint8Array | string, options: NodeProposeOptions,
  ): Promise<ProposeSuccess> {
    if (this.stopping !== null) return Promise.reject(new PaxosError('STOPPED', 'the node is stopped', NOT_CHOSEN));
    if (this.options.isFollower) return Promise.reject(followerError());
    let driver: GroupDriver;
    let stateMachineId: number;
    try {
      driver = this.group(groupIndex).driver;
      stateMachineId = this.stateMachineFor(groupIndex, options.stateMachineId);
    } catch (error) {
      return Promise.reject(error);
    }
    const payload = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    if (!(payload instanceof Uint8Array)) {
      return Promise.reject(new PaxosError('BAD_OPTIONS', 'a value must be a Uint8Array or a string', NOT_CHOSEN));
    }
    const framed = frameValue(stateMachineId, payload);
    if (framed.length > this.options.maxValueBytes) {
      return Promise.reject(new PaxosError('VALUE_TOO_LARGE',
        `the value has ${payload.length} bytes; the limit (maxValueBytes) is ${this.options.maxValueBytes - 4}`,
        NOT_CHOSEN));
    }
    const timeoutMs = options.timeoutMs ?? this.options.proposeTimeoutMs;
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
      return Promise.reject(new PaxosError('BAD_OPTIONS',
        `timeoutMs must be a positive number of at most ${MAX_TIMEOUT_MS}, got ${timeoutMs}`, NOT_CHOSEN));
    }
    return driver.propose(framed, { timeoutMs, context: options.context, signal: options.signal });
  }

  private stateMachineFor(groupIndex: number, requested: number | undefined): number {
    const registered = this.group(groupIndex).registry.stateMachines;
    if (requested !== undefined) {
      if (!registered.some((stateMachine) => stateMachine.id === requested)) {
        throw new PaxosError('BAD_OPTIONS', `group ${groupIndex} has no state machine with id ${requested}`,
          NOT_CHOSEN);
      }
      return requested;
    }
    if (registered.length === 0) return NO_STATE_MACHINE_ID;
    if (registered.length === 1) return (registered[0] as StateMachine).id;
    throw new PaxosError('BAD_OPTIONS', `group ${groupIndex} has ${registered.length} state machines; ` +
      'name one with stateMachineId', NOT_CHOSEN);
  }

  private refuseFollower(nodeId: number): void {
    if (this.options.followers.some((follower) => follower.id === nodeId)) {
      throw new PaxosError('BAD_OPTIONS',
        `node ${nodeId} is configured as a follower; a follower never votes`, NOT_CHOSEN);
    }
  }

  /**
   * The group identity (PhxPaxos's gid) is created on first start: the configured member with the
   * lowest id proposes the configured membership again, under a fresh random gid, as the group's
   * first membership change (the others wait for it, so that they do not duel). Until it is chosen
   * the group works as before; if it fails, the first membership change creates the gid instead.
   */
  private createGroupIdentities(): void {
    if (this.options.isFollower) return;
    for (const group of this.groups) {
      const current = group.membership.membership;
      if (current.gid !== 0) continue;
      const lowest = Math.min(...current.members.map((member) => member.id));
      if (lowest !== this.nodeId) continue;
      this.changeMembership(group.groupIndex, current, current.members, {}).then(
        (membership) => this.options.logger.info('group identity created', {
          group: group.groupIndex, gid: membership.gid,
        }),
        (error: unknown) => this.options.logger.warn('group identity not created; the first membership change ' +
          'will create it', { group: group.groupIndex, error: String(error) }),
      );
    }
  }

  /** Propose `members` against the version this node has; the log decides whether it still holds. */
  private async changeMembership(
    groupIndex: number, current: Membership, members: readonly Member[], options: MembershipChangeOptions,
  ): Promise<Membership> {
    if (this.stopping !== null) throw new PaxosError('STOPPED', 'the node is stopped', NOT_CHOSEN);
    if (this.options.isFollower) throw followerError();
    const gid = current.gid !== 0 ? current.gid : this.random.int(1, 2 ** 47);
    const change = encodeMembership({ gid, version: current.version, members, nonce: this.random.int(0, 2 ** 32) });
    const { result } = await this.group(groupIndex).driver.propose(frameValue(SYSTEM_STATE_MACHINE_ID, change),
      { timeoutMs: options.timeoutMs ?? this.options.proposeTimeoutMs, signal: options.signal });
    const outcome = result as MembershipOutcome;
    if (!outcome.applied) {
      // mayBeChosen stays true: the change was chosen, and refused by every node alike.
      throw new PaxosError('MEMBERSHIP_CONFLICT', outcome.reason === 'gid'
        ? `group ${groupIndex} belongs to another cluster (gid ${outcome.current.gid})`
        : `group ${groupIndex}'s membership changed to version ${outcome.current.version} meanwhile; ` +
          'read members() and try again');
    }
    return this.members(groupIndex);
  }

  private group(groupIndex: number): GroupRuntime {
    const group = Number.isInteger(groupIndex) ? this.groups[groupIndex] : undefined;
    if (group === undefined) {
      throw new PaxosError('INVALID_GROUP', `group ${groupIndex} does not exist (this node runs groups ` +
        `0..${this.groups.length - 1})`, NOT_CHOSEN);
    }
    return group;
  }

  private electingGroup(groupIndex: number): NonNullable<GroupRuntime['masterManager']> {
    const manager = this.group(groupIndex).masterManager;
    if (manager === undefined) {
      throw new PaxosError('NOT_ELECTING', `this node does not take part in group ${groupIndex}'s master election ` +
        '(see the master.groups option)', NOT_CHOSEN);
    }
    return manager;
  }
}

function followerError(): PaxosError {
  return new PaxosError('FOLLOWER_CANNOT_PROPOSE',
    'this node is a follower: it learns and executes, never proposes', NOT_CHOSEN);
}

function validateMember(member: unknown): Member {
  const candidate = member as Partial<Member> | undefined;
  if (typeof candidate !== 'object' || candidate === null || !Number.isInteger(candidate.id) ||
    (candidate.id as number) < 1 || (candidate.id as number) > 0xffff_ffff || typeof candidate.host !== 'string' ||
    candidate.host.length === 0 || !Number.isInteger(candidate.port) || (candidate.port as number) < 1 ||
    (candidate.port as number) > 65_535) {
    throw new PaxosError('BAD_OPTIONS',
      `a member is {id, host, port} with a positive id; got ${JSON.stringify(member)}`, NOT_CHOSEN);
  }
  if (Buffer.byteLength(candidate.host) > MAX_HOST_BYTES) {
    throw new PaxosError('BAD_OPTIONS', `a member's host has at most ${MAX_HOST_BYTES} bytes`, NOT_CHOSEN);
  }
  return { id: candidate.id as number, host: candidate.host, port: candidate.port as number };
}

/**
 * Tell the transport where the group's members are and which cluster's group it is. It runs while
 * a membership change executes: a transport that throws is logged, never allowed to fail the
 * execution (a retry would find the change applied and report it refused).
 */
function announceMembership(
  transport: Transport, nodeId: number, groupIndex: number, membership: Membership, logger: Logger,
): void {
  try {
    for (const { id, host, port } of membership.members) {
      if (id !== nodeId) transport.setPeerAddress?.(id, { host, port });
    }
    if (membership.gid !== 0) transport.setGroupIdentity?.(groupIndex, membership.gid);
  } catch (error) {
    logger.error('the transport refused a membership change; peers may be unreachable until restart', {
      group: groupIndex, version: membership.version, error: String(error),
    });
  }
}

/** What the log cleaner sees of a group. */
/** A group as the cleaner sees it, through its current runtime; an installing group is left alone. */
function cleanableGroup(
  runtime: () => GroupRuntime, installing: () => boolean, keepLogFrom: () => number | undefined,
): CleanableGroup {
  return {
    keepLogFrom,
    groupIndex: runtime().groupIndex,
    nowInstanceId: () => runtime().driver.nowInstanceId,
    minChosenInstanceId: () => runtime().driver.minChosenInstanceId,
    userStateMachines: () => runtime().registry.stateMachines,
    halted: () => installing() || runtime().driver.halted !== null,
    setMinChosenInstanceId: (instanceId) => runtime().driver.setMinChosenInstanceId(instanceId),
  };
}

function customTransport(transport: ClosableTransport): NodeTransport {
  const close = transport.close?.bind(transport);
  return { transport, close };
}
