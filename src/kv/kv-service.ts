/**
 * The KV service of one node (PhxPaxos's PhxKV, done as a product): a PaxosNode running the KV
 * state machine in every group, each group with its own master, and the rules that make reads on
 * the master linearizable.
 *
 * Writes are proposed only by the master of the key's group, under a *fence*: when a node becomes
 * master it first proposes a fence carrying its master version, and the state machine applies a
 * write only under the group's latest fence. So once a master's fence is executed here, every write
 * applied in the group came either before the fence (and is executed here, in order) or from this
 * node. A read on the master is therefore served from local state while the lease holds (checked
 * at the moment of the read) and the group's fence is this node's: it sees every write
 * acknowledged before it began, by this master or an earlier one. The lease is what keeps two
 * nodes from both believing they are master; the fence is what keeps a deposed
 * master's late proposals from being applied behind the new master's back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import { PaxosNode } from '../node/paxos-node.js';
import { NODE_DEFAULTS, type PaxosNodeOptions } from '../node/node-options.js';
import { SILENT_LOGGER } from '../runtime/interfaces.js';
import { DEFAULT_MASTER_OPTIONS } from '../runtime/master/master-manager.js';
import type { MasterInfo } from '../runtime/master/master-state-machine.js';
import { groupOfKey } from './key-hash.js';
import {
  encodeKvCommand, LONE_SURROGATE, MAX_HTTP_ADDRESS_BYTES, MAX_KEY_BYTES, MAX_KV_VALUE_BYTES, type Fence,
  type KvCommand, type SessionStamp,
} from './kv-command.js';
import { MAX_SESSION_TTL_MS } from '../runtime/session-table.js';
import { KvError, NOT_APPLIED, type MasterHint } from './kv-error.js';
import { KvCheckpoints } from './kv-checkpoints.js';
import { checkGroupCount } from './kv-settings.js';
import { KvSnapshotter, loadKvSnapshots, resolveSnapshotOptions, type KvSnapshotOptions, type TakenSnapshot,
} from './kv-snapshotter.js';
import { KvStateMachine, type KvOutcome } from './kv-state-machine.js';
import { KvWatchHub, type WatchOptions } from './watch-hub.js';

export interface KvServiceOptions extends Omit<PaxosNodeOptions, 'stateMachines' | 'master'> {
  /** How other nodes reach this node's HTTP API (`http[s]://host:port`); it travels in this node's fences. */
  readonly httpEndpoint: string;
  /** The master lease of every group (default 10,000 ms; at least 1,000). */
  readonly masterLeaseMs?: number;
  /**
   * Where the groups' masters start out: 'spread' (default; group g on the member at g mod n, by
   * id), so the proposing work is on different nodes, or 'together' (every group on the member with
   * the lowest id), so the nodes' Paxos traffic is a star, not a mesh: far cheaper where the nodes
   * share a machine's cores (docs/kv-service.md, "How many groups, and where their masters go").
   * Only the start is steered: a master lost later is replaced by whichever node wins the election.
   */
  readonly masterPlacement?: 'spread' | 'together';
  /**
   * When to snapshot each group's state into `<dataDir>/kv-snapshots/` (kv-snapshotter.ts), so a
   * restart replays only the log after the newest snapshot; false: never (every restart replays
   * the whole log). Snapshots need a dataDir and the built-in log store; otherwise none are taken.
   */
  readonly snapshots?: KvSnapshotOptions | false;
  /** Watches (`GET /v1/watch`): each group's history kept for resuming, and the watchers allowed. */
  readonly watch?: WatchOptions;
}

export interface KvWriteOptions {
  /** Apply only when the key's version is this one (0: the key was never written). */
  readonly version?: number;
  /**
   * Exactly once: the write is number `sequence` (1, 2, ...; one outstanding at a time) of session
   * `id` of group `group` (both as `openSession` answered). A retry with the same number gets the
   * first answer and never applies twice; an older number or an expired session is refused (that
   * copy was not applied; an earlier copy of the number may have been). Ids are per group, so the
   * group must be the key's: the same id in another group is another client's session.
   */
  readonly session?: { readonly group: number; readonly id: number; readonly sequence: number };
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface KvWritten {
  /** The key's version after the write. */
  readonly version: number;
  /** A session's retry of a write applied before: this is its stored answer, applied once. */
  readonly duplicate?: boolean;
}

export interface KvReadOptions {
  /** Read this node's state, whatever its role: fast, possibly behind the master. */
  readonly stale?: boolean;
  /** How long a linearizable read may wait for this master's fence (default: the service's timeout). */
  readonly timeoutMs?: number;
  /** Aborting gives up waiting for the fence: ABORTED (a read changes nothing). */
  readonly signal?: AbortSignal;
}

export interface KvListOptions {
  /** Keys that start with this (default: every key). */
  readonly prefix?: string;
  /** Keys after this one (exclusive), for the next page. */
  readonly after?: string;
  readonly limit: number;
  readonly stale?: boolean;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface KvRecord {
  readonly key: string;
  /** Undefined when the key was never written or is deleted. */
  readonly value: Uint8Array | undefined;
  /** 0 for a key never written; a deleted key keeps counting. */
  readonly version: number;
}

export interface KvGroupStatus {
  readonly group: number;
  readonly nowInstanceId: number;
  readonly lastExecutedInstanceId: number;
  /** The instance this node's newest durable snapshot of the group covers (-1: none). */
  readonly checkpointInstanceId: number;
  /** The lowest instance still in this node's log (log cleaning raises it behind the checkpoint). */
  readonly minChosenInstanceId: number;
  readonly master: { readonly nodeId: number; readonly endpoint: string | undefined } | undefined;
  /** How long the master's lease still runs as this node sees it, in ms (null: no master). */
  readonly leaseExpiresInMs: number | null;
  readonly isMaster: boolean;
  /** Whether this node's fence is the group's: it may write and serve linearizable reads. */
  readonly serving: boolean;
  /** Client sessions open in the group (exactly-once writes), as this node's state has them. */
  readonly sessions: number;
  readonly members: readonly number[];
  /** Why the group is halted (STORAGE_UNAVAILABLE, GROUP_HALTED, DIVERGED), or null while it runs. */
  readonly halted: string | null;
  /** Set while the node's storage refuses writes: the error code (ENOSPC, EIO, EROFS...) and message. */
  readonly storage: { readonly reason: string; readonly message: string } | null;
}

/**
 * This node's fencing of one group. A fence counts only in the tenure it was proposed in (the
 * master version at which this node last became master): a fence from an earlier tenure may have
 * been overtaken by another master's fence that is still to be chosen, so each tenure fences anew.
 */
interface FenceState {
  tenure: number | undefined;
  current: Fence | undefined;
  pending: Promise<Fence> | undefined;
  pendingTenure: number | undefined;
}

const DEFAULT_TIMEOUT_MS = 5_000;
/** How long a session may stay idle (in log time) before it expires, unless it asks otherwise. */
export const DEFAULT_SESSION_TTL_MS = 60 * 60 * 1000;
const CONFLICT_BACKOFF_MS = 10;
const FENCE_WATCH_MS = 250;

export class KvService {
  readonly node: PaxosNode;
  readonly machine: KvStateMachine;
  /** This node's watches: the groups' recent changes and the watchers streaming them. */
  readonly watches: KvWatchHub;
  readonly groups: number;
  private readonly httpEndpoint: string;
  /** Per group: this node's tenure as master, the fence it established in it, and a fence on its way. */
  private readonly fences: FenceState[];
  private readonly defaultTimeoutMs: number;
  /** Fences again where this node is master without a current fence (a fence that failed or timed out). */
  private readonly fenceWatch: ReturnType<typeof setInterval>;
  private readonly snapshotter: KvSnapshotter | undefined;
  /** The groups' master lease (how long an election may take after a master is lost). */
  readonly masterLeaseMs: number;
  /** Per group: since when (performance.now()) this node has known no master; undefined while it knows one. */
  private readonly masterlessSince: (number | undefined)[];

  private constructor(
    node: PaxosNode, machine: KvStateMachine, groups: number, options: KvServiceOptions,
    snapshotter: KvSnapshotter | undefined,
    // Last, and defaulted: the machine must have been built with it as its observer to feed it.
    watches: KvWatchHub = new KvWatchHub(groups, options.watch),
  ) {
    this.node = node;
    this.machine = machine;
    this.watches = watches;
    this.groups = groups;
    this.snapshotter = snapshotter;
    this.httpEndpoint = options.httpEndpoint;
    this.fences = Array.from({ length: groups }, () => ({
      tenure: undefined, current: undefined, pending: undefined, pendingTenure: undefined,
    }));
    this.defaultTimeoutMs = options.proposeTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.masterLeaseMs = options.masterLeaseMs ?? DEFAULT_MASTER_OPTIONS.leaseMs;
    const now = performance.now();
    this.masterlessSince = Array.from({ length: groups }, () => now);
    this.fenceWatch = setInterval(() => this.fenceWhereMaster(), FENCE_WATCH_MS);
    this.fenceWatch.unref();
  }

  static async start(options: KvServiceOptions): Promise<KvService> {
    const groups = options.groups ?? 1;
    checkEndpoint(options.httpEndpoint);
    checkMasterPlacement(options.masterPlacement);
    const ownsLog = options.dataDir !== undefined && options.store === undefined;
    if (ownsLog) await checkGroupCount(options.dataDir as string, groups);
    // Snapshots sit beside the log they shorten: with a store of the caller's, the two could part ways.
    const snapshots = ownsLog && options.snapshots !== false ? resolveSnapshotOptions(options.snapshots) : undefined;
    const logger = options.logger ?? SILENT_LOGGER;
    // One view of the snapshot files for the snapshotter and the state machine (which sends and
    // installs snapshots through it), so their work on a group's files never interleaves.
    const files = snapshots === undefined ? undefined : new KvCheckpoints(options.dataDir as string, groups, logger);
    // Created first, so it sees the snapshots loaded below (history starts after them) and the replay.
    const watches = new KvWatchHub(groups, options.watch);
    const machine = new KvStateMachine({ groups, checkpoints: files, observer: watches });
    if (files !== undefined) await loadKvSnapshots(machine, files.dataDir, groups, logger);
    const isFollower = (options.followers ?? []).some((follower) => follower.id === options.nodeId);
    // The node reports master changes from its start on; the service exists only once it has started.
    const started: { service?: KvService } = {};
    const node = await PaxosNode.start({
      ...options,
      logCleaning: logCleaningFor(options, snapshots),
      stateMachines: [machine],
      master: isFollower ? { groups: [] } : {
        groups: 'all', leaseMs: options.masterLeaseMs,
        ...(options.masterPlacement === 'together' ? { together: true } : { spread: true }),
      },
      // The service learns of the change first: its fencing must not depend on the caller's code.
      onMasterChange: (group, master) => {
        started.service?.onMasterChange(group, master);
        options.onMasterChange?.(group, master);
      },
    });
    const snapshotter = snapshots === undefined || files === undefined ? undefined
      : new KvSnapshotter(machine, node, files, logger, snapshots);
    // Heads follow every instance the node executes, not only KV ones (watch-history.ts).
    watches.followExecution((group) => node.nowInstanceId(group));
    const service = new KvService(node, machine, groups, options, snapshotter, watches);
    started.service = service;
    for (let group = 0; group < groups; group++) {
      if (node.isMaster(group)) service.onMasterChange(group, node.master(group));
    }
    return service;
  }

  get nodeId(): number {
    return this.node.nodeId;
  }

  groupOf(key: string): number {
    return groupOfKey(key, this.groups);
  }

  /**
   * The master a request for `key` would be sent on to: defined exactly when this node would refuse
   * a write or a linearizable read of it at once with NOT_MASTER naming a master it knows the
   * endpoint of (this node is not the group's master, and its storage is fine). A forwarding node
   * asks first, rather than building and catching that refusal for most of its requests.
   */
  forwardingTarget(key: string): MasterHint | undefined {
    const group = this.groupOf(key);
    if (this.node.storageFailure() !== undefined || this.node.isMaster(group)) return undefined;
    const hint = this.masterHint(group);
    return hint !== undefined && hint.nodeId !== this.nodeId && hint.endpoint !== undefined ? hint : undefined;
  }

  /** Write a key on the master of its group; resolves with the key's new version once applied here. */
  async put(key: string, value: Uint8Array | string, options: KvWriteOptions = {}): Promise<KvWritten> {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    if (!(bytes instanceof Uint8Array)) throw new KvError('BAD_REQUEST', 'a value is a string or bytes', NOT_APPLIED);
    if (bytes.length > MAX_KV_VALUE_BYTES) {
      throw new KvError('VALUE_TOO_LARGE', `the value has ${bytes.length} bytes; the limit is ${MAX_KV_VALUE_BYTES}`, NOT_APPLIED);
    }
    return await this.write(key, options, (fence, session) => ({
      kind: 'put', key, value: bytes, expectedVersion: options.version, fence, ...(session === undefined ? {} : { session }),
    }));
  }

  /**
   * Delete a key on the master of its group; the key keeps counting versions. A key that is not set
   * (never written, or deleted) is left as it is: KEY_NOT_FOUND with its version, not applied.
   */
  async delete(key: string, options: KvWriteOptions = {}): Promise<KvWritten> {
    return await this.write(key, options, (fence, session) => ({
      kind: 'delete', key, expectedVersion: options.version, fence, ...(session === undefined ? {} : { session }),
    }));
  }

  /**
   * Read a key. By default on the master only, linearizable (see the header); with `stale`, from
   * this node's state: everything executed here, which may trail the master.
   */
  async get(key: string, options: KvReadOptions = {}): Promise<KvRecord> {
    const group = this.checkedGroup(key);
    if (options.signal?.aborted === true) throw new KvError('ABORTED', 'the caller aborted', NOT_APPLIED);
    if (options.stale !== true) this.checkServing(group, await this.fenceForRead(group, options));
    const { value, version } = this.machine.read(group, key);
    // A copy: the state machine's own bytes must not be changed by a caller.
    return { key, value: value === undefined ? undefined : Uint8Array.prototype.slice.call(value), version };
  }

  /**
   * The first half of what makes a read on this node linearizable: it holds the group's lease, and
   * its fence is chosen. The caller then calls `checkServing` with that fence and reads in the same
   * synchronous step (the lease may have ended while the fence was being chosen).
   */
  private async fenceForRead(
    group: number, options: { readonly timeoutMs?: number; readonly signal?: AbortSignal },
  ): Promise<Fence> {
    this.requireMaster(group);
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    checkTimeout(timeoutMs);
    return await this.establishFence(group, performance.now() + timeoutMs, options.signal);
  }

  /** The second half: the lease still held and `fence` still the current one, checked at the read. */
  private checkServing(group: number, fence: Fence): void {
    this.requireMaster(group);
    if (!this.isCurrentFence(group, fence) || this.fences[group]?.current !== fence) throw this.notMaster(group);
  }

  /**
   * A page of the group's keys with their values and versions (see KvStateMachine.scan), read as
   * `get` reads: by default on the master, linearizable (the lease and fence are checked at the
   * scan, which sees the group at one instant); with `stale`, from this node's state.
   */
  async list(group: number, options: KvListOptions): Promise<{ records: KvRecord[]; more: boolean }> {
    if (!Number.isInteger(group) || group < 0 || group >= this.groups) {
      throw new KvError('BAD_REQUEST', `group ${String(group)} is not in [0, ${this.groups - 1}]`, NOT_APPLIED);
    }
    if (options.signal?.aborted === true) throw new KvError('ABORTED', 'the caller aborted', NOT_APPLIED);
    if (options.stale !== true) this.checkServing(group, await this.fenceForRead(group, options));
    const { entries, more } = this.machine.scan(group, options.prefix ?? '', options.after, options.limit);
    return {
      records: entries.map(([key, { value, version }]) => ({
        key, value: value === undefined ? undefined : Uint8Array.prototype.slice.call(value), version,
      })),
      more,
    };
  }

  /** Where the group's master can be reached, as far as this node knows. */
  masterHint(group: number): MasterHint | undefined {
    const master = this.node.master(group);
    if (master === undefined) return undefined;
    const fence = this.machine.fence(group);
    const endpoint = master.nodeId === this.nodeId ? this.httpEndpoint
      : fence?.nodeId === master.nodeId ? fence.httpAddress : undefined;
    return { nodeId: master.nodeId, endpoint };
  }

  status(): readonly KvGroupStatus[] {
    return Array.from({ length: this.groups }, (_, group) => {
      const hint = this.masterHint(group);
      const lease = this.node.master(group);
      const state = this.fences[group] as FenceState;
      const current = state.current;
      return {
        group,
        nowInstanceId: this.node.nowInstanceId(group),
        lastExecutedInstanceId: this.machine.lastExecutedInstanceId(group),
        checkpointInstanceId: this.machine.checkpointInstanceId(group),
        minChosenInstanceId: this.node.minChosenInstanceId(group),
        master: hint,
        leaseExpiresInMs: lease === undefined ? null
          : Math.max(0, Math.round(lease.leaseExpiresAt - performance.now())),
        isMaster: this.node.isMaster(group),
        serving: this.node.isMaster(group) && current !== undefined && state.tenure !== undefined &&
          current.masterVersion >= state.tenure && this.isCurrentFence(group, current),
        members: this.node.members(group).members.map((member) => member.id),
        sessions: this.machine.sessionStats(group).sessions,
        halted: this.node.status(group).halted?.code ?? null,
        storage: this.node.storageFailure() ?? null,
      };
    });
  }

  /**
   * Snapshot the group (every group when left out) now; resolves once the snapshots are durable and
   * the checkpoints advanced. Rejects with BAD_REQUEST when this service takes no snapshots.
   */
  async snapshot(group?: number): Promise<TakenSnapshot[]> {
    if (this.snapshotter === undefined) {
      throw new KvError('BAD_REQUEST', 'this node takes no snapshots (no dataDir, a custom store, or snapshots: false)', NOT_APPLIED);
    }
    if (group !== undefined && (!Number.isInteger(group) || group < 0 || group >= this.groups)) {
      throw new KvError('BAD_REQUEST', `group ${String(group)} is not in [0, ${this.groups - 1}]`, NOT_APPLIED);
    }
    return await this.snapshotter.snapshotNow(group);
  }

  async stop(): Promise<void> {
    clearInterval(this.fenceWatch);
    await this.snapshotter?.stop();
    await this.node.stop();
  }

  private async write(
    key: string, options: KvWriteOptions, command: (fence: Fence, session: SessionStamp | undefined) => KvCommand,
  ): Promise<KvWritten> {
    const group = this.checkedGroup(key);
    checkVersion(options.version);
    const session = checkSession(options.session, group);
    const outcome = await this.proposeFenced(group, options, (fence) =>
      // Stamped at each proposal: the log time it brings is when it was proposed.
      command(fence, session === undefined ? undefined : { ...session, at: Date.now() }));
    const duplicate = 'duplicate' in outcome && outcome.duplicate === true;
    if (outcome.ok) return duplicate ? { version: outcome.version, duplicate } : { version: outcome.version };
    switch (outcome.code) {
      case 'VERSION_CONFLICT':
        throw new KvError('VERSION_CONFLICT', `key "${key}" is at version ${outcome.version}, not ${options.version}`,
          { ...NOT_APPLIED, version: outcome.version, ...(duplicate ? { duplicate } : {}) });
      case 'KEY_NOT_FOUND':
        throw new KvError('KEY_NOT_FOUND', `key "${key}" is not set (version ${outcome.version}); nothing was deleted`,
          { ...NOT_APPLIED, version: outcome.version, ...(duplicate ? { duplicate } : {}) });
      // The state machine knows only that this copy was not applied: an earlier copy of the same number
      // may have been (and its answer is gone), so the write's outcome is unknown unless the session never
      // existed. Only the client knows whether it sent an earlier copy (KvClient decides from that).
      case 'SESSION_EXPIRED':
        throw new KvError('SESSION_EXPIRED', outcome.message, { mayHaveBeenApplied: outcome.registered });
      case 'STALE_SEQUENCE':
        throw new KvError('STALE_SEQUENCE', `sequence number ${session?.sequence ?? '?'} is not above the ` +
          `session's last, ${outcome.lastSequence}: this copy was not applied; an earlier copy of number ` +
          `${session?.sequence ?? '?'} may have been`, { mayHaveBeenApplied: true });
      default:
        throw new KvError('INTERNAL', `the state machine refused the write: ${outcome.code}: ${JSON.stringify(outcome)}`, NOT_APPLIED);
    }
  }

  /**
   * Open a client session in the group of `key` (or in `group`) through the log: its id, for the
   * `session` option of writes to keys of that group. It expires once idle for `ttlMs` of log time.
   */
  async openSession(
    where: { readonly key: string } | { readonly group: number },
    options: { readonly ttlMs?: number; readonly timeoutMs?: number; readonly signal?: AbortSignal } = {},
  ): Promise<{ group: number; session: number; ttlMs: number }> {
    const group = 'key' in where ? this.checkedGroup(where.key) : where.group;
    if (!Number.isInteger(group) || group < 0 || group >= this.groups) {
      throw new KvError('BAD_REQUEST', `group ${String(group)} is not in [0, ${this.groups - 1}]`, NOT_APPLIED);
    }
    const ttlMs = options.ttlMs ?? DEFAULT_SESSION_TTL_MS;
    if (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_SESSION_TTL_MS) {
      throw new KvError('BAD_REQUEST', `a session's ttlMs is an integer from 1 to ${MAX_SESSION_TTL_MS}`, NOT_APPLIED);
    }
    const outcome = await this.proposeFenced(group, options, (fence) => ({ kind: 'register', fence, at: Date.now(), ttlMs }));
    if (!outcome.ok || outcome.session === undefined) {
      throw new KvError('INTERNAL', `the state machine refused the session: ${JSON.stringify(outcome)}`, NOT_APPLIED);
    }
    return { group, session: outcome.session, ttlMs };
  }

  /**
   * Propose a command under this node's fence in the group, until it executes with an outcome other
   * than FENCED. A command refused for a stale fence was certainly not applied: fence again and
   * retry, once.
   */
  private async proposeFenced(
    group: number, options: { readonly timeoutMs?: number; readonly signal?: AbortSignal },
    command: (fence: Fence) => KvCommand,
  ): Promise<KvOutcome> {
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    checkTimeout(timeoutMs);
    const deadline = performance.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      this.requireMaster(group);
      const fence = await this.establishFence(group, deadline, options.signal);
      // The lease may have ended while the fence was being chosen (or a new tenure begun).
      this.requireMaster(group);
      if (this.fences[group]?.current !== fence) continue;
      const outcome = await this.propose(group, encodeKvCommand(command(fence)), deadline, options.signal);
      if (outcome.ok || outcome.code !== 'FENCED') return outcome;
      this.forgetFence(group, fence);
      if (attempt >= 2) throw this.notMaster(group);
    }
  }

  /**
   * This node's fence in the group for its current tenure, proposing one first when it has none.
   * Each caller waits until its own deadline; the fence itself is proposed with the service's
   * timeout. A failure here means the caller's own read or write was not proposed.
   */
  private async establishFence(group: number, deadline: number, signal?: AbortSignal): Promise<Fence> {
    const state = this.fences[group] as FenceState;
    const tenure = this.tenure(group);
    if (tenure === undefined) throw this.notMaster(group);
    const current = state.current;
    if (current !== undefined && current.masterVersion >= tenure && this.isCurrentFence(group, current)) return current;
    if (state.pending === undefined || state.pendingTenure !== tenure) {
      const pending: Promise<Fence> = this.proposeFence(group, tenure).finally(() => {
        if (state.pending === pending) state.pending = undefined;
      });
      pending.catch(() => {}); // its waiters may all have given up
      state.pending = pending;
      state.pendingTenure = tenure;
    }
    try {
      return await withDeadline(state.pending, deadline, signal);
    } catch (error) {
      // Whatever happened to the fence (chosen or not, waited for or given up on), the caller's own
      // operation was never proposed: that, not the fence's outcome, is what the caller is told.
      const failure = error instanceof KvError ? error : new KvError('INTERNAL', String(error), { cause: error });
      throw new KvError(failure.code, `fencing group ${group} before the operation: ${failure.message}; ` +
        'the operation itself was not proposed', { ...NOT_APPLIED, master: failure.master, cause: error });
    }
  }

  private async proposeFence(group: number, tenure: number): Promise<Fence> {
    const state = this.fences[group] as FenceState;
    const stillOurs = (): boolean => state.tenure === tenure && this.node.isMaster(group);
    const master = this.node.master(group);
    if (master === undefined || master.nodeId !== this.nodeId || !stillOurs()) throw this.notMaster(group);
    const fence: Fence = { nodeId: this.nodeId, masterVersion: master.version };
    const command: KvCommand = { kind: 'fence', fence, httpAddress: this.httpEndpoint };
    const outcome = await this.propose(group, encodeKvCommand(command), performance.now() + this.defaultTimeoutMs,
      undefined, stillOurs);
    // Chosen after the tenure ended, it may be overtaken by a fence still to come: not ours to use.
    if (state.tenure !== tenure) throw this.notMaster(group);
    // A fence proposed twice (a retry whose first copy was chosen) finds itself current.
    if (outcome.ok || this.isCurrentFence(group, fence)) {
      state.current = fence;
      return fence;
    }
    throw this.notMaster(group);
  }

  /** The master version at which this node became master of the group this time; undefined when it is not. */
  private tenure(group: number): number | undefined {
    const state = this.fences[group] as FenceState;
    const master = this.node.master(group);
    if (master === undefined || master.nodeId !== this.nodeId) {
      this.endTenure(state);
      return undefined;
    }
    state.tenure ??= master.version;
    return state.tenure;
  }

  private endTenure(state: FenceState): void {
    state.tenure = undefined;
    state.current = undefined;
    state.pending = undefined;
    state.pendingTenure = undefined;
  }

  /**
   * Propose until chosen or the deadline. CONFLICT (other values, such as bids and fences around an
   * election, won every instance tried) means ours was certainly not chosen, so it is tried again.
   */
  private async propose(
    group: number, value: Uint8Array, deadline: number, signal?: AbortSignal,
    stillOurs: () => boolean = () => this.node.isMaster(group),
  ): Promise<KvOutcome> {
    for (;;) {
      // Outside the try: running out of time before proposing is a TIMEOUT of something not proposed.
      const timeoutMs = remaining(deadline);
      try {
        const { result } = await this.node.propose(group, value, { timeoutMs, signal });
        return result as KvOutcome;
      } catch (error) {
        if (error instanceof PaxosError && error.code === 'CONFLICT' && !error.mayBeChosen) {
          // Not chosen: try again, unless this node is no longer the master it proposed as.
          if (!stillOurs()) throw this.notMaster(group);
          await sleep(CONFLICT_BACKOFF_MS * (1 + Math.random()), undefined, { signal }).catch(() => {
            throw new KvError('ABORTED', 'the caller aborted before the write was chosen', NOT_APPLIED);
          });
          continue;
        }
        throw fromPaxosError(error);
      }
    }
  }

  /**
   * How long this node has known no master of `group` (0 while it knows one): a plain request
   * stops waiting for a master once this passes a lease (master-wait.ts), as no election is
   * finishing where this node can see it (a minority side of a partition, a lost quorum).
   */
  masterlessForMs(group: number): number {
    if (this.node.master(group) !== undefined) return 0;
    const since = this.masterlessSince[group];
    return since === undefined ? 0 : performance.now() - since;
  }

  private onMasterChange(group: number, master: MasterInfo | undefined): void {
    const state = this.fences[group];
    if (state === undefined) return;
    // Reported on every change, a lease running out included (master-manager.ts checkChange).
    this.masterlessSince[group] = master === undefined ? performance.now() : undefined;
    // Master changes are reported as each bid executes, so a tenure that ended is always seen to end.
    this.endTenure(state);
    if (master?.nodeId !== this.nodeId) return;
    // Fence at once, so writes and reads need not wait for it and the others learn our endpoint.
    this.establishFence(group, performance.now() + this.defaultTimeoutMs).catch(() => {});
  }

  private fenceWhereMaster(): void {
    for (let group = 0; group < this.groups; group++) {
      const state = this.fences[group];
      if (state === undefined || state.pending !== undefined || !this.node.isMaster(group)) continue;
      this.establishFence(group, performance.now() + this.defaultTimeoutMs).catch(() => {});
    }
  }

  private isCurrentFence(group: number, fence: Fence): boolean {
    const current = this.machine.fence(group);
    return current !== undefined && current.nodeId === fence.nodeId && current.masterVersion === fence.masterVersion;
  }

  private forgetFence(group: number, fence: Fence): void {
    const state = this.fences[group];
    if (state?.current !== undefined && state.current.masterVersion === fence.masterVersion) state.current = undefined;
  }

  private requireMaster(group: number): void {
    const storage = this.node.storageFailure();
    if (storage !== undefined) {
      // Not NO_MASTER: the cluster has a master; this node cannot write (nor so vouch for a read).
      const outlook = storage.reason === 'STORAGE_CORRUPT' ? 'its files are damaged and need repair'
        : 'it resumes by itself once it can';
      throw new KvError('STORAGE_UNAVAILABLE', `node ${this.nodeId} cannot write to its storage (${storage.reason}); ` +
        `${outlook}: ask another node`, NOT_APPLIED);
    }
    if (!this.node.isMaster(group)) throw this.notMaster(group);
  }

  private notMaster(group: number): KvError {
    const hint = this.masterHint(group);
    if (hint === undefined) {
      return new KvError('NO_MASTER', `group ${group} has no master right now (an election takes up to a lease)`, NOT_APPLIED);
    }
    if (hint.nodeId === this.nodeId) {
      // This node's tenure changed under the operation; it was not proposed. Retrying is safe.
      return new KvError('NO_MASTER', `node ${this.nodeId} is taking up group ${group}'s mastership again; try again`, NOT_APPLIED);
    }
    return new KvError('NOT_MASTER', `node ${this.nodeId} is not the master of group ${group}; node ${hint.nodeId} is`,
      { ...NOT_APPLIED, master: hint });
  }

  private checkedGroup(key: string): number {
    if (typeof key !== 'string' || key.length === 0) throw new KvError('BAD_REQUEST', 'a key is a non-empty string', NOT_APPLIED);
    const bytes = Buffer.byteLength(key, 'utf8');
    if (bytes > MAX_KEY_BYTES) throw new KvError('KEY_TOO_LARGE', `the key has ${bytes} bytes; the limit is ${MAX_KEY_BYTES}`, NOT_APPLIED);
    if (LONE_SURROGATE.test(key)) throw new KvError('BAD_REQUEST', 'a key must be well-formed Unicode', NOT_APPLIED);
    return this.groupOf(key);
  }
}

/** Translate the library's error into the service's, keeping the honest outcome. */
function fromPaxosError(error: unknown): KvError {
  if (!(error instanceof PaxosError)) {
    return new KvError('INTERNAL', String(error), { cause: error });
  }
  const details = { mayHaveBeenApplied: error.mayBeChosen, cause: error };
  switch (error.code) {
    case 'TIMEOUT':
      return new KvError('TIMEOUT', error.mayBeChosen ? 'timed out; the write may have been applied'
        : 'timed out before the write was proposed; it was not applied', details);
    case 'OVERLOADED': return new KvError('OVERLOADED', error.message, details);
    case 'ABORTED': return new KvError('ABORTED', error.message, details);
    case 'VALUE_TOO_LARGE': return new KvError('VALUE_TOO_LARGE', error.message, details);
    case 'STORAGE_UNAVAILABLE': return new KvError('STORAGE_UNAVAILABLE', error.message, details);
    case 'CONFLICT': case 'STOPPED': case 'GROUP_HALTED': case 'NOT_MEMBER': case 'FOLLOWER_CANNOT_PROPOSE':
      return new KvError('UNAVAILABLE', `${error.code}: ${error.message}`, details);
    default: return new KvError('INTERNAL', `${error.code}: ${error.message}`, details);
  }
}

function checkMasterPlacement(placement: unknown): void {
  if (placement === undefined || placement === 'spread' || placement === 'together') return;
  throw new PaxosError('BAD_OPTIONS', `masterPlacement must be 'spread' or 'together', got ${JSON.stringify(placement)}`,
    NOT_CHOSEN);
}

/** The endpoint travels in every fence: one that cannot be encoded would leave the group unable to fence. */
function checkEndpoint(endpoint: unknown): void {
  let valid = typeof endpoint === 'string' && Buffer.byteLength(endpoint) <= MAX_HTTP_ADDRESS_BYTES &&
    !LONE_SURROGATE.test(endpoint);
  try {
    const protocol = new URL(endpoint as string).protocol;
    valid &&= protocol === 'http:' || protocol === 'https:';
  } catch {
    valid = false;
  }
  if (!valid) {
    throw new PaxosError('BAD_OPTIONS', `httpEndpoint must be an http:// or https:// URL of at most ${MAX_HTTP_ADDRESS_BYTES} ` +
      `bytes, got ${JSON.stringify(endpoint)}`, NOT_CHOSEN);
  }
}

function checkVersion(version: number | undefined): void {
  if (version !== undefined && (!Number.isSafeInteger(version) || version < 0)) {
    throw new KvError('BAD_REQUEST', `a version is an integer of at least 0, got ${String(version)}`, NOT_APPLIED);
  }
}

function checkSession(session: KvWriteOptions['session'], group: number): { id: number; sequence: number } | undefined {
  if (session === undefined) return undefined;
  const valid = (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n) && n >= 1;
  if (typeof session !== 'object' || session === null || !valid(session.id) || !valid(session.sequence)) {
    throw new KvError('BAD_REQUEST', 'a session is { group, id, sequence }, id and sequence integers of at least 1', NOT_APPLIED);
  }
  if (session.group !== group) {
    throw new KvError('BAD_REQUEST', `session ${String(session.group)}.${session.id} is not of this key's group, ` +
      `${group} (session ids are per group: open a session there)`, NOT_APPLIED);
  }
  return { id: session.id, sequence: session.sequence };
}

function checkTimeout(timeoutMs: number): void {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
    throw new KvError('BAD_REQUEST', `timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`, NOT_APPLIED);
  }
}

function remaining(deadline: number): number {
  const left = deadline - performance.now();
  if (left <= 0) throw new KvError('TIMEOUT', 'timed out before the write was proposed; it was not applied', NOT_APPLIED);
  return left;
}

/**
 * Wait for a shared promise until this caller's own deadline or abort. Its errors keep the default
 * outcome (maybe applied): giving up waiting says nothing of the awaited proposal; the caller knows more.
 */
function withDeadline<T>(promise: Promise<T>, deadline: number, signal: AbortSignal | undefined): Promise<T> {
  if (signal?.aborted === true) return Promise.reject(new KvError('ABORTED', 'the caller aborted'));
  const left = deadline - performance.now();
  if (left <= 0) return Promise.reject(new KvError('TIMEOUT', 'the deadline passed'));
  return new Promise<T>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      done();
      reject(new KvError('ABORTED', 'the caller aborted'));
    };
    const timer = setTimeout(() => {
      done();
      reject(new KvError('TIMEOUT', 'the deadline passed'));
    }, left);
    signal?.addEventListener('abort', onAbort, { once: true });
    promise.then((value) => { done(); resolve(value); }, (error: unknown) => { done(); reject(error); });
  });
}

/**
 * The hold defaults to two snapshot intervals (at least the node's default): the older of the two
 * snapshots a group keeps then still has the log after it, so a damaged newest snapshot falls back
 * to the older one and replays from there.
 */
function logCleaningFor(
  options: KvServiceOptions, snapshots: Required<KvSnapshotOptions> | undefined,
): KvServiceOptions['logCleaning'] {
  const given = options.logCleaning;
  // Anything given that is not a plain object is left for the node to refuse (BAD_OPTIONS).
  if (snapshots === undefined || (given !== undefined && (typeof given !== 'object' || given === null))) return given;
  if (given?.holdInstances !== undefined) return given;
  const hold = Math.max(NODE_DEFAULTS.logCleaning.holdInstances, 2 * snapshots.everyInstances);
  return { ...given, holdInstances: hold };
}
