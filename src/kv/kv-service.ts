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
 * nodes from both believing they are master (DESIGN §7); the fence is what keeps a deposed
 * master's late proposals from being applied behind the new master's back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { PaxosError } from '../errors.js';
import { PaxosNode } from '../node/paxos-node.js';
import type { PaxosNodeOptions } from '../node/node-options.js';
import type { MasterInfo } from '../runtime/master/master-state-machine.js';
import { groupOfKey } from './key-hash.js';
import { encodeKvCommand, MAX_KEY_BYTES, MAX_KV_VALUE_BYTES, type Fence, type KvCommand } from './kv-command.js';
import { KvError, type MasterHint } from './kv-error.js';
import { KvStateMachine, type KvOutcome } from './kv-state-machine.js';

export interface KvServiceOptions extends Omit<PaxosNodeOptions, 'stateMachines' | 'master'> {
  /** How other nodes reach this node's HTTP API (`http://host:port`); it travels in this node's fences. */
  readonly httpEndpoint: string;
  /** The master lease of every group (default 10,000 ms; at least 1,000). */
  readonly masterLeaseMs?: number;
}

export interface KvWriteOptions {
  /** Apply only when the key's version is this one (0: the key was never written). */
  readonly version?: number;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface KvReadOptions {
  /** Read this node's state, whatever its role: fast, possibly behind the master. */
  readonly stale?: boolean;
  /** How long a linearizable read may wait for this master's fence (default: the service's timeout). */
  readonly timeoutMs?: number;
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
  readonly master: { readonly nodeId: number; readonly endpoint: string | undefined } | undefined;
  readonly isMaster: boolean;
  /** Whether this node's fence is the group's: it may write and serve linearizable reads. */
  readonly serving: boolean;
  readonly members: readonly number[];
}

const DEFAULT_TIMEOUT_MS = 5_000;
const CONFLICT_BACKOFF_MS = 10;
const FENCE_WATCH_MS = 250;
/** With the u flag a surrogate pair is one code point, so this matches only unpaired halves (not UTF-8). */
const LONE_SURROGATE = /\p{Cs}/u;

export class KvService {
  readonly node: PaxosNode;
  readonly machine: KvStateMachine;
  readonly groups: number;
  private readonly httpEndpoint: string;
  /** Per group: the fence this node established and believes current, and a fence on its way. */
  private readonly fences: ({ current: Fence | undefined; pending: Promise<Fence> | undefined })[];
  private readonly defaultTimeoutMs: number;
  /** Fences again where this node is master without a current fence (a fence that failed or timed out). */
  private readonly fenceWatch: ReturnType<typeof setInterval>;

  private constructor(node: PaxosNode, machine: KvStateMachine, groups: number, options: KvServiceOptions) {
    this.node = node;
    this.machine = machine;
    this.groups = groups;
    this.httpEndpoint = options.httpEndpoint;
    this.fences = Array.from({ length: groups }, () => ({ current: undefined, pending: undefined }));
    this.defaultTimeoutMs = options.proposeTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.fenceWatch = setInterval(() => this.fenceWhereMaster(), FENCE_WATCH_MS);
    this.fenceWatch.unref();
  }

  static async start(options: KvServiceOptions): Promise<KvService> {
    const groups = options.groups ?? 1;
    const machine = new KvStateMachine({ groups });
    const isFollower = (options.followers ?? []).some((follower) => follower.id === options.nodeId);
    // The node reports master changes from its start on; the service exists only once it has started.
    const started: { service?: KvService } = {};
    const node = await PaxosNode.start({
      ...options,
      stateMachines: [machine],
      master: isFollower ? { groups: [] } : { groups: 'all', leaseMs: options.masterLeaseMs },
      onMasterChange: (group, master) => {
        options.onMasterChange?.(group, master);
        started.service?.onMasterChange(group, master);
      },
    });
    const service = new KvService(node, machine, groups, options);
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

  /** Write a key on the master of its group; resolves with the key's new version once applied here. */
  async put(key: string, value: Uint8Array | string, options: KvWriteOptions = {}): Promise<{ version: number }> {
    const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
    if (!(bytes instanceof Uint8Array)) throw new KvError('BAD_REQUEST', 'a value is a string or bytes');
    if (bytes.length > MAX_KV_VALUE_BYTES) {
      throw new KvError('VALUE_TOO_LARGE', `the value has ${bytes.length} bytes; the limit is ${MAX_KV_VALUE_BYTES}`);
    }
    return await this.write(key, options, (fence) => ({
      kind: 'put', key, value: bytes, expectedVersion: options.version, fence,
    }));
  }

  /** Delete a key on the master of its group; the key keeps counting versions. */
  async delete(key: string, options: KvWriteOptions = {}): Promise<{ version: number }> {
    return await this.write(key, options, (fence) => ({ kind: 'delete', key, expectedVersion: options.version, fence }));
  }

  /**
   * Read a key. By default on the master only, linearizable (see the header); with `stale`, from
   * this node's state: everything executed here, which may trail the master.
   */
  async get(key: string, options: KvReadOptions = {}): Promise<KvRecord> {
    const group = this.checkedGroup(key);
    if (options.stale !== true) {
      this.requireMaster(group);
      const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
      checkTimeout(timeoutMs);
      const fence = await this.establishFence(group, timeoutMs);
      // The lease may have ended while the fence was being chosen: check both again, at the read.
      this.requireMaster(group);
      if (!this.isCurrentFence(group, fence)) throw this.notMaster(group);
    }
    return { key, ...this.machine.read(group, key) };
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
      const current = this.fences[group]?.current;
      return {
        group,
        nowInstanceId: this.node.nowInstanceId(group),
        lastExecutedInstanceId: this.machine.lastExecutedInstanceId(group),
        master: hint,
        isMaster: this.node.isMaster(group),
        serving: this.node.isMaster(group) && current !== undefined && this.isCurrentFence(group, current),
        members: this.node.members(group).members.map((member) => member.id),
      };
    });
  }

  async stop(): Promise<void> {
    clearInterval(this.fenceWatch);
    await this.node.stop();
  }

  private async write(
    key: string, options: KvWriteOptions, command: (fence: Fence) => KvCommand,
  ): Promise<{ version: number }> {
    const group = this.checkedGroup(key);
    checkVersion(options.version);
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    checkTimeout(timeoutMs);
    const deadline = performance.now() + timeoutMs;
    // A write refused for a stale fence was certainly not applied: fence again and retry, once.
    for (let attempt = 1; ; attempt++) {
      this.requireMaster(group);
      const fence = await this.establishFence(group, remaining(deadline), options.signal).catch((error: unknown) => {
        // Whatever happened to the fence, this write was not proposed.
        throw error instanceof KvError && error.mayHaveBeenApplied
          ? new KvError(error.code, `${error.message} (while fencing; the write was not proposed)`, { cause: error })
          : error;
      });
      const outcome = await this.propose(group, encodeKvCommand(command(fence)), deadline, options.signal);
      if (outcome.ok) return { version: outcome.version };
      if (outcome.code === 'VERSION_CONFLICT') {
        throw new KvError('VERSION_CONFLICT', `key "${key}" is at version ${outcome.version}, not ${options.version}`,
          { version: outcome.version });
      }
      if (outcome.code === 'FENCED') {
        this.forgetFence(group, fence);
        if (attempt < 2) continue;
        throw this.notMaster(group);
      }
      throw new KvError('INTERNAL', `the state machine refused the write: ${outcome.code}: ${outcome.message}`);
    }
  }

  /** This node's fence in the group, proposing one first when it has none that is current. */
  private async establishFence(group: number, timeoutMs: number, signal?: AbortSignal): Promise<Fence> {
    const state = this.fences[group] as (typeof this.fences)[number];
    if (state.current !== undefined && this.isCurrentFence(group, state.current)) return state.current;
    state.pending ??= this.proposeFence(group, timeoutMs).finally(() => { state.pending = undefined; });
    return await abortable(state.pending, signal);
  }

  private async proposeFence(group: number, timeoutMs: number): Promise<Fence> {
    const master = this.node.master(group);
    if (master === undefined || master.nodeId !== this.nodeId) throw this.notMaster(group);
    const fence: Fence = { nodeId: this.nodeId, masterVersion: master.version };
    const command: KvCommand = { kind: 'fence', fence, httpAddress: this.httpEndpoint };
    const outcome = await this.propose(group, encodeKvCommand(command), performance.now() + timeoutMs);
    // A fence proposed twice (a retry whose first copy was chosen) finds itself current.
    if (outcome.ok || this.isCurrentFence(group, fence)) {
      (this.fences[group] as (typeof this.fences)[number]).current = fence;
      return fence;
    }
    throw this.notMaster(group);
  }

  /**
   * Propose until chosen or the deadline. CONFLICT (other values, such as bids and fences around an
   * election, won every instance tried) means ours was certainly not chosen, so it is tried again.
   */
  private async propose(group: number, value: Uint8Array, deadline: number, signal?: AbortSignal): Promise<KvOutcome> {
    for (;;) {
      try {
        const { result } = await this.node.propose(group, value, { timeoutMs: remaining(deadline), signal });
        return result as KvOutcome;
      } catch (error) {
        if (error instanceof PaxosError && error.code === 'CONFLICT' && !error.mayBeChosen) {
          await sleep(CONFLICT_BACKOFF_MS * (1 + Math.random()), undefined, { signal }).catch(() => {
            throw new KvError('ABORTED', 'the caller aborted before the write was chosen');
          });
          continue;
        }
        throw fromPaxosError(error);
      }
    }
  }

  private onMasterChange(group: number, master: MasterInfo | undefined): void {
    const state = this.fences[group];
    if (state === undefined) return;
    if (master?.nodeId !== this.nodeId) {
      state.current = undefined;
      return;
    }
    // Fence at once, so writes and reads need not wait for it and the others learn our endpoint.
    this.establishFence(group, this.defaultTimeoutMs).catch(() => {});
  }

  private fenceWhereMaster(): void {
    for (let group = 0; group < this.groups; group++) {
      const state = this.fences[group];
      if (state === undefined || state.pending !== undefined || !this.node.isMaster(group)) continue;
      if (state.current !== undefined && this.isCurrentFence(group, state.current)) continue;
      this.establishFence(group, this.defaultTimeoutMs).catch(() => {});
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
    if (!this.node.isMaster(group)) throw this.notMaster(group);
  }

  private notMaster(group: number): KvError {
    const hint = this.masterHint(group);
    if (hint === undefined || hint.nodeId === this.nodeId) {
      return new KvError('NO_MASTER', `group ${group} has no master right now (an election takes up to a lease)`);
    }
    return new KvError('NOT_MASTER', `node ${this.nodeId} is not the master of group ${group}; node ${hint.nodeId} is`,
      { master: hint });
  }

  private checkedGroup(key: string): number {
    if (typeof key !== 'string' || key.length === 0) throw new KvError('BAD_REQUEST', 'a key is a non-empty string');
    const bytes = Buffer.byteLength(key, 'utf8');
    if (bytes > MAX_KEY_BYTES) throw new KvError('KEY_TOO_LARGE', `the key has ${bytes} bytes; the limit is ${MAX_KEY_BYTES}`);
    if (LONE_SURROGATE.test(key)) throw new KvError('BAD_REQUEST', 'a key must be well-formed Unicode');
    return this.groupOf(key);
  }
}

/** Translate the library's error into the service's, keeping the honest outcome. */
function fromPaxosError(error: unknown): KvError {
  if (!(error instanceof PaxosError)) {
    return new KvError('INTERNAL', String(error), { mayHaveBeenApplied: true, cause: error });
  }
  const details = { mayHaveBeenApplied: error.mayBeChosen, cause: error };
  switch (error.code) {
    case 'TIMEOUT':
      return new KvError('TIMEOUT', error.mayBeChosen ? 'timed out; the write may have been applied'
        : 'timed out before the write was proposed; it was not applied', details);
    case 'OVERLOADED': return new KvError('OVERLOADED', error.message, details);
    case 'ABORTED': return new KvError('ABORTED', error.message, details);
    case 'VALUE_TOO_LARGE': return new KvError('VALUE_TOO_LARGE', error.message, details);
    case 'CONFLICT': case 'STOPPED': case 'GROUP_HALTED': case 'NOT_MEMBER': case 'FOLLOWER_CANNOT_PROPOSE':
      return new KvError('UNAVAILABLE', `${error.code}: ${error.message}`, details);
    default: return new KvError('INTERNAL', `${error.code}: ${error.message}`, details);
  }
}

function checkVersion(version: number | undefined): void {
  if (version !== undefined && (!Number.isSafeInteger(version) || version < 0)) {
    throw new KvError('BAD_REQUEST', `a version is an integer of at least 0, got ${String(version)}`);
  }
}

function checkTimeout(timeoutMs: number): void {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
    throw new KvError('BAD_REQUEST', `timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`);
  }
}

function remaining(deadline: number): number {
  const left = deadline - performance.now();
  if (left <= 0) throw new KvError('TIMEOUT', 'timed out before the write was proposed; it was not applied');
  return left;
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(new KvError('ABORTED', 'the caller aborted before the write was proposed'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new KvError('ABORTED', 'the caller aborted before the write was proposed'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
