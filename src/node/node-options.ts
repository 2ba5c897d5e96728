/**
 * The options of a PaxosNode, their defaults, and their validation. Everything is checked once, at
 * start, and an invalid option is refused with BAD_OPTIONS and a message that names the field.
 */
import { DEFAULT_TIMING, type ProtocolTiming } from '../core/config.js';
import {
  DEFAULT_CHECKPOINT_TRANSFER_TIMING, type CheckpointTransferTiming,
} from '../runtime/checkpoint/checkpoint-timing.js';
import type { HaltReason } from '../core/ready.js';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import { isIP } from 'node:net';
import type { Clock, LogStore, Logger, StateMachine, TimerHost, Transport } from '../runtime/interfaces.js';
import { MAX_RECORD_BYTES } from '../io/record-codec.js';
import { DEFAULT_INLINE_WRITE_BYTES } from '../io/inline-write-policy.js';
import type { LogCleaningSettings } from '../runtime/log-cleaner.js';
import { SILENT_LOGGER } from '../runtime/interfaces.js';
import { DEFAULT_MASTER_OPTIONS } from '../runtime/master/master-manager.js';
import type { MasterInfo } from '../runtime/master/master-state-machine.js';
import type { Membership } from '../runtime/membership/membership-codec.js';
import type { TlsFileOptions } from '../security/tls-files.js';
import type { Random } from '../util/random.js';
import { testFaultsOf, type NodeTestFaults } from './test-faults.js';

export interface NodeAddress {
  readonly host: string;
  readonly port: number;
}

/** A member of the cluster: its node id (chosen by the operator, never reused) and its address. */
export interface MemberAddress extends NodeAddress {
  readonly id: number;
}

/** A follower, its address, and the member whose chosen values it receives. */
export interface FollowerAddress extends MemberAddress {
  readonly follows: number;
}

/** Why a group stopped for good on this node (the node's other groups go on). */
export interface GroupHalt extends HaltReason {
  /**
   * The exception, when the halt is a broken invariant (a bug), or a group that could not be rebuilt
   * after its storage resumed (for another reason than the storage), rather than a storage error or
   * divergence.
   */
  readonly cause?: unknown;
}

/** A transport the node starts with and closes when it stops (the TCP transport is one). */
export interface ClosableTransport extends Transport {
  close?(): Promise<void>;
}

export interface PaxosNodeOptions {
  /** This node's id: a positive integer, unique in the cluster and never reused. */
  readonly nodeId: number;
  /** Every member, this node included, with the address its peers reach it at. */
  readonly members: readonly MemberAddress[];
  /** Where to listen (default: this node's address in `members`). Port 0 picks a free port. */
  readonly listen?: NodeAddress;
  /**
   * The local IP address the TCP transport binds its outgoing connections to (default: the system
   * chooses), so that a firewall can tell this node's traffic to its peers from clients'.
   */
  readonly localAddress?: string;
  /** Nodes refuse connections from another cluster (default "multipaxos"). */
  readonly clusterId?: string;
  /** Directory of the durable log (created if missing). Required unless `store` is given. */
  readonly dataDir?: string;
  /** A LogStore to use instead of the file store in `dataDir`; the node does not close it. */
  readonly store?: LogStore;
  /** A Transport to use instead of TCP; the node closes it on stop when it has `close`. */
  readonly transport?: ClosableTransport;
  /**
   * Mutual TLS between nodes (default: plain TCP, for local development). Every node's certificate
   * is signed by the cluster CA and names its node id as a SAN URI `multipaxos:node:<id>`
   * (`multipaxos cert issue` makes one); see TcpTransportOptions.tls and docs/security.md.
   */
  readonly tls?: TlsFileOptions;
  /** How many independent Paxos groups this node runs (default 1). */
  readonly groups?: number;
  /** The state machines of every group, or a function giving each group its own. */
  readonly stateMachines?: readonly StateMachine[] | ((groupIndex: number) => readonly StateMachine[]);
  /** fsync before a vote or a learned value is acknowledged (default true). */
  readonly sync?: boolean;
  /** Default propose timeout in ms (default 10,000). */
  readonly proposeTimeoutMs?: number;
  /** Per group: proposals that may wait before OVERLOADED (default 10,000). */
  readonly maxQueuedProposals?: number;
  /** Per group: bytes of waiting proposals before OVERLOADED (default 64 MiB). */
  readonly maxQueuedBytes?: number;
  /** At most this many proposals share one instance (default 1,000; 1 turns batching off). */
  readonly maxBatchCount?: number;
  /** At most this many bytes of proposals share one instance (default 1 MiB). */
  readonly maxBatchBytes?: number;
  /** A larger value is refused with VALUE_TOO_LARGE (default 8 MiB). */
  readonly maxValueBytes?: number;
  /** The transport's frame limit (default 16 MiB); must hold the largest value and batch. */
  readonly maxFrameBytes?: number;
  /**
   * Size of each log segment file when the node opens its own file store in `dataDir` (default
   * 8 MiB). Segments are zero-filled ahead of use and one spare is prepared while the active one
   * fills, so a node holds about two of them before its log has any data.
   */
  readonly segmentBytes?: number;
  /**
   * With the node's own file store: durable log writes of up to this many bytes are made on the
   * event loop's thread, which saves the round trip to libuv's thread pool (default 64 KiB; 0: every
   * write goes to the thread pool). See docs/transport-and-storage.md for the trade.
   */
  readonly inlineWriteBytes?: number;
  /**
   * Log cleaning (PhxPaxos Cleaner): the node deletes each group's log below
   * min(checkpointInstanceId of its user state machines) + 1 − `holdInstances`, one group per pass
   * every `intervalMs` (0: never clean), at most `maxInstancesPerPass` instances a pass. Nothing is
   * cleaned in a group whose state machines keep no checkpoint. See `NODE_DEFAULTS.logCleaning`.
   */
  readonly logCleaning?: {
    readonly holdInstances?: number;
    readonly intervalMs?: number;
    readonly maxInstancesPerPass?: number;
  };
  /**
   * Master election (opt-in, per group): `groups` lists the groups whose master this node bids for
   * ('all', or indexes; default none), `leaseMs` the lease (default 10,000, at least 1,000), and
   * `driftBound` the most any clock's rate may differ from true time (default 0.01 = ±1%).
   * `spread`: at start, a node waits a little before its first bid in the groups it is not the
   * preferred master of (group g prefers the member at index g mod n, by id), so the masters of
   * many groups, and their load, start out on different nodes (default false). `together`: every
   * group prefers the member with the lowest id, so the masters start out on one node, and the
   * nodes' Paxos traffic is a star rather than a mesh (default false; not with `spread`).
   */
  readonly master?: {
    readonly groups?: readonly number[] | 'all';
    readonly leaseMs?: number;
    readonly driftBound?: number;
    readonly spread?: boolean;
    readonly together?: boolean;
  };
  /**
   * Followers (PhxPaxos followers): nodes that learn every chosen value, pushed by the member they
   * follow (and by asking otherwise), execute it and serve local reads, but never vote or propose.
   * List them on every node; a node whose id is listed here is a follower.
   */
  readonly followers?: readonly FollowerAddress[];
  /** Called when a group's master changes as this node sees it (undefined: no live master). */
  readonly onMasterChange?: (groupIndex: number, master: MasterInfo | undefined) => void;
  /**
   * Called as each membership change executes on this node, before the next instance (the group
   * identity's creation included).
   */
  readonly onMembershipChange?: (groupIndex: number, membership: Membership) => void;
  /**
   * Called when a group halts: GROUP_HALTED after a storage error (restarting the process is the
   * remedy) or a broken invariant (`cause` is set), DIVERGED when its log disagrees with the cluster's.
   */
  readonly onHalt?: (groupIndex: number, halt: GroupHalt) => void;
  readonly timing?: Partial<ProtocolTiming>;
  /**
   * Checkpoint transfer to and from peers too far behind to learn from the log: piece size, window,
   * timeouts and the largest checkpoint accepted (see CheckpointTransferTiming for the defaults).
   */
  readonly checkpointTransfer?: Partial<CheckpointTransferTiming>;
  readonly logger?: Logger;
  /**
   * Where the node draws randomness (group identities, nonces, jitter, each life's incarnation);
   * defaults to the OS's. Give a restarted node a fresh stream: a proposal's identity also carries
   * the promise its life began with, so a reused seed stays safe with `sync` on, but not without it.
   */
  readonly random?: Random;
  /** A monotonic clock in ms (default performance.now). */
  readonly clock?: Clock;
  /**
   * Runs the node's one timer, at moments of `clock` (default setTimeout). With `clock`, `random`,
   * `store` and `transport`, it makes a node deterministic: the simulator runs nodes this way.
   */
  readonly timers?: TimerHost;
}

/** Where the masters of a node's groups start out: wherever bids land, spread by group, or on one node. */
export type MasterPlacement = 'any' | 'spread' | 'together';

export interface ResolvedNodeOptions {
  readonly nodeId: number;
  readonly members: readonly MemberAddress[];
  readonly listen: NodeAddress | undefined;
  readonly localAddress: string | undefined;
  readonly clusterId: string;
  readonly dataDir: string | undefined;
  readonly store: LogStore | undefined;
  readonly transport: ClosableTransport | undefined;
  readonly tls: TlsFileOptions | undefined;
  readonly groups: number;
  readonly stateMachines: (groupIndex: number) => readonly StateMachine[];
  readonly sync: boolean;
  readonly proposeTimeoutMs: number;
  readonly maxQueuedProposals: number;
  readonly maxQueuedBytes: number;
  readonly maxBatchCount: number;
  readonly maxBatchBytes: number;
  readonly maxValueBytes: number;
  readonly maxFrameBytes: number;
  readonly segmentBytes: number;
  readonly inlineWriteBytes: number;
  readonly logCleaning: LogCleaningSettings;
  readonly master: {
    readonly groups: readonly number[]; readonly leaseMs: number; readonly driftBound: number;
    /** Which member each group's first bid favours (see PaxosNodeOptions.master): none, g mod n, or the lowest id. */
    readonly placement: MasterPlacement;
  };
  readonly followers: readonly FollowerAddress[];
  /** This node is a follower: it learns and executes, never votes or proposes. */
  readonly isFollower: boolean;
  readonly onMasterChange: ((groupIndex: number, master: MasterInfo | undefined) => void) | undefined;
  readonly onMembershipChange: ((groupIndex: number, membership: Membership) => void) | undefined;
  readonly onHalt: ((groupIndex: number, halt: GroupHalt) => void) | undefined;
  readonly timing: ProtocolTiming;
  readonly checkpointTransfer: CheckpointTransferTiming;
  readonly logger: Logger;
  readonly random: Random | undefined;
  readonly clock: Clock | undefined;
  readonly timers: TimerHost | undefined;
  /** Test only: the simulator's canaries (see test-faults.ts); empty otherwise. */
  readonly testFaults: NodeTestFaults;
}

export const NODE_DEFAULTS = Object.freeze({
  clusterId: 'multipaxos',
  groups: 1,
  sync: true,
  proposeTimeoutMs: 10_000,
  maxQueuedProposals: 10_000,
  maxQueuedBytes: 64 * 1024 * 1024,
  maxBatchCount: 1_000,
  maxBatchBytes: 1024 * 1024,
  maxValueBytes: 8 * 1024 * 1024,
  maxFrameBytes: 16 * 1024 * 1024,
  // Small enough that a fresh node holds ~16 MiB (active + spare), large enough that a roll (which
  // costs a directory fsync, the zero-filling runs ahead in the background) comes at most every
  // 8 full batches of the default 1 MiB.
  segmentBytes: 8 * 1024 * 1024,
  inlineWriteBytes: DEFAULT_INLINE_WRITE_BYTES,
  logCleaning: Object.freeze({
    // 20,000 = twice the KV service's default snapshot interval (10,000 instances). The KV keeps its
    // two newest snapshots and falls back to the older if the newest is damaged; the older one lies
    // about one interval below the newest checkpoint, so a hold of two intervals keeps the log it
    // must replay from there. It also lets a peer up to 20,000 instances behind (a restart, a short
    // partition) catch up from the log instead of a snapshot transfer. The cost is bounded: 20,000
    // instances of a group's log (a few MiB with small values).
    holdInstances: 20_000,
    // A pass is one metadata write and an unlink now and then: once a second is cheap and keeps
    // the log within a second's worth of instances of its bound.
    intervalMs: 1_000,
    // Bounds one pass's work (index updates, in one event-loop turn); a backlog is taken in steps.
    maxInstancesPerPass: 10_000,
  }),
});

/** Room in a frame beyond the value: message fields, batch lengths, framing. */
const FRAME_HEADROOM_BYTES = 64 * 1024;
/**
 * A value or batch is logged as one record, which the file store reads back only up to
 * MAX_RECORD_BYTES: room is left for the identity envelope, batch lengths and the record's fields.
 */
const MAX_VALUE_BYTES = MAX_RECORD_BYTES - FRAME_HEADROOM_BYTES;
const MAX_GROUPS = 10_000;
const MAX_NODE_ID = 0xffff_ffff;

export function resolveNodeOptions(options: PaxosNodeOptions): ResolvedNodeOptions {
  if (typeof options !== 'object' || options === null) throw bad('options', 'must be an object');
  const nodeId = integer(options.nodeId, 'nodeId', 1, MAX_NODE_ID);
  const members = resolveMembers(options.members, options.transport !== undefined);
  const followers = resolveFollowers(options.followers, members, options.transport !== undefined);
  const isFollower = followers.some((follower) => follower.id === nodeId);
  if (!isFollower && !members.some((member) => member.id === nodeId)) {
    throw bad('members', `must include this node (nodeId ${nodeId}), unless it is listed in followers`);
  }
  const listen = options.listen === undefined ? undefined : address(options.listen, 'listen', true);
  const clusterId = options.clusterId ?? NODE_DEFAULTS.clusterId;
  if (typeof clusterId !== 'string' || clusterId.length === 0 || Buffer.byteLength(clusterId) > 128) {
    throw bad('clusterId', 'must be a non-empty string of at most 128 bytes');
  }
  if (options.store === undefined && (typeof options.dataDir !== 'string' || options.dataDir.length === 0)) {
    throw bad('dataDir', 'is required (a directory path) unless a store is given');
  }
  if (options.store !== undefined && options.dataDir !== undefined) {
    throw bad('dataDir', 'cannot be combined with store');
  }
  const groups = integer(options.groups ?? NODE_DEFAULTS.groups, 'groups', 1, MAX_GROUPS);
  const maxValueBytes = integer(options.maxValueBytes ?? NODE_DEFAULTS.maxValueBytes, 'maxValueBytes', 1, MAX_VALUE_BYTES);
  const maxBatchBytes = integer(options.maxBatchBytes ?? NODE_DEFAULTS.maxBatchBytes, 'maxBatchBytes', 1, MAX_VALUE_BYTES);
  const maxFrameBytes = integer(options.maxFrameBytes ?? NODE_DEFAULTS.maxFrameBytes, 'maxFrameBytes', 1024, 2 ** 31);
  const largestValue = Math.max(maxValueBytes, maxBatchBytes);
  if (maxFrameBytes < largestValue + FRAME_HEADROOM_BYTES) {
    throw bad('maxFrameBytes', `must exceed max(maxValueBytes, maxBatchBytes) by ${FRAME_HEADROOM_BYTES} bytes ` +
      `(at least ${largestValue + FRAME_HEADROOM_BYTES})`);
  }
  return {
    nodeId, members, listen, clusterId, groups, maxValueBytes, maxBatchBytes, maxFrameBytes,
    localAddress: localAddressOf(options.localAddress),
    dataDir: options.dataDir,
    store: options.store,
    transport: options.transport,
    tls: options.tls,
    stateMachines: resolveStateMachines(options.stateMachines),
    sync: boolean(options.sync ?? NODE_DEFAULTS.sync, 'sync'),
    proposeTimeoutMs: integer(options.proposeTimeoutMs ?? NODE_DEFAULTS.proposeTimeoutMs, 'proposeTimeoutMs', 1,
      2 ** 31 - 1),
    maxQueuedProposals: integer(options.maxQueuedProposals ?? NODE_DEFAULTS.maxQueuedProposals, 'maxQueuedProposals',
      1, 2 ** 31),
    maxQueuedBytes: integer(options.maxQueuedBytes ?? NODE_DEFAULTS.maxQueuedBytes, 'maxQueuedBytes', 1, 2 ** 40),
    maxBatchCount: integer(options.maxBatchCount ?? NODE_DEFAULTS.maxBatchCount, 'maxBatchCount', 1, 1_000_000),
    segmentBytes: integer(options.segmentBytes ?? NODE_DEFAULTS.segmentBytes, 'segmentBytes', 64 * 1024, 2 ** 31),
    // Up to 1 MiB: larger writes would block the loop for as long as the disk takes to write them.
    inlineWriteBytes: integer(options.inlineWriteBytes ?? NODE_DEFAULTS.inlineWriteBytes, 'inlineWriteBytes', 0,
      1024 * 1024),
    logCleaning: resolveLogCleaning(options.logCleaning),
    master: resolveFollowerMaster(resolveMaster(options.master, groups), isFollower),
    followers,
    isFollower,
    onMasterChange: resolveCallback(options.onMasterChange, 'onMasterChange'),
    onMembershipChange: resolveCallback(options.onMembershipChange, 'onMembershipChange'),
    onHalt: resolveCallback(options.onHalt, 'onHalt'),
    timing: resolveTiming(options.timing),
    checkpointTransfer: resolveCheckpointTransfer(options.checkpointTransfer),
    logger: options.logger ?? SILENT_LOGGER,
    random: options.random,
    clock: options.clock,
    timers: resolveTimers(options.timers),
    testFaults: testFaultsOf(options),
  };
}

function resolveMembers(value: unknown, customTransport: boolean): MemberAddress[] {
  if (!Array.isArray(value) || value.length === 0) throw bad('members', 'must be a non-empty array');
  const seen = new Set<number>();
  return value.map((member: unknown, index) => {
    const field = `members[${index}]`;
    if (typeof member !== 'object' || member === null) throw bad(field, 'must be {id, host, port}');
    const { id } = member as { id: unknown };
    const checkedId = integer(id, `${field}.id`, 1, MAX_NODE_ID);
    if (seen.has(checkedId)) throw bad(`${field}.id`, `${checkedId} appears twice`);
    seen.add(checkedId);
    // With a custom transport, addresses are the transport's business and may be left out.
    const { host, port } = member as { host?: unknown; port?: unknown };
    if (customTransport && host === undefined && port === undefined) return { id: checkedId, host: '', port: 0 };
    return { id: checkedId, ...address({ host, port }, field, false) };
  });
}

function resolveFollowers(
  value: PaxosNodeOptions['followers'], members: readonly MemberAddress[], customTransport: boolean,
): FollowerAddress[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw bad('followers', 'must be an array of {id, host, port, follows}');
  const memberIds = new Set(members.map((member) => member.id));
  const seen = new Set<number>();
  return value.map((follower: unknown, index) => {
    const field = `followers[${index}]`;
    if (typeof follower !== 'object' || follower === null) throw bad(field, 'must be {id, host, port, follows}');
    const { id, follows } = follower as { id: unknown; follows: unknown };
    const checkedId = integer(id, `${field}.id`, 1, MAX_NODE_ID);
    if (memberIds.has(checkedId) || seen.has(checkedId)) throw bad(`${field}.id`, `${checkedId} is listed twice`);
    seen.add(checkedId);
    const followed = integer(follows, `${field}.follows`, 1, MAX_NODE_ID);
    if (!memberIds.has(followed)) throw bad(`${field}.follows`, `node ${followed} is not a member`);
    const { host, port } = follower as { host?: unknown; port?: unknown };
    if (customTransport && host === undefined && port === undefined) {
      return { id: checkedId, host: '', port: 0, follows: followed };
    }
    return { id: checkedId, ...address({ host, port }, field, false), follows: followed };
  });
}

function address(value: unknown, field: string, portZeroAllowed: boolean): NodeAddress {
  if (typeof value !== 'object' || value === null) throw bad(field, 'must be {host, port}');
  const { host, port } = value as { host: unknown; port: unknown };
  if (typeof host !== 'string' || host.length === 0 || Buffer.byteLength(host) > 255) {
    throw bad(`${field}.host`, 'must be a non-empty string of at most 255 bytes');
  }
  return { host, port: integer(port, `${field}.port`, portZeroAllowed ? 0 : 1, 65_535) };
}

function resolveStateMachines(
  value: PaxosNodeOptions['stateMachines'],
): (groupIndex: number) => readonly StateMachine[] {
  if (value === undefined) return () => [];
  if (typeof value === 'function') return value;
  if (!Array.isArray(value)) throw bad('stateMachines', 'must be an array or a function of the group index');
  return () => value;
}

function resolveMaster(value: PaxosNodeOptions['master'], groupCount: number): ResolvedNodeOptions['master'] {
  if (value === undefined) return { groups: [], ...DEFAULT_MASTER_OPTIONS, placement: 'any' };
  if (typeof value !== 'object' || value === null) throw bad('master', 'must be {groups, leaseMs, driftBound}');
  const all = Array.from({ length: groupCount }, (_, index) => index);
  let groups: number[];
  if (value.groups === undefined) groups = [];
  else if (value.groups === 'all') groups = all;
  else if (Array.isArray(value.groups)) {
    groups = value.groups.map((group, index) => integer(group, `master.groups[${index}]`, 0, groupCount - 1));
  } else throw bad('master.groups', "must be 'all' or an array of group indexes");
  const leaseMs = integer(value.leaseMs ?? DEFAULT_MASTER_OPTIONS.leaseMs, 'master.leaseMs', 1_000, 2 ** 31 - 1);
  const driftBound = value.driftBound ?? DEFAULT_MASTER_OPTIONS.driftBound;
  if (typeof driftBound !== 'number' || !(driftBound >= 0 && driftBound <= 0.2)) {
    throw bad('master.driftBound', `must be a number in [0, 0.2], got ${JSON.stringify(driftBound)}`);
  }
  const spread = value.spread ?? false;
  if (typeof spread !== 'boolean') throw bad('master.spread', `must be true or false, got ${JSON.stringify(spread)}`);
  const together = value.together ?? false;
  if (typeof together !== 'boolean') {
    throw bad('master.together', `must be true or false, got ${JSON.stringify(together)}`);
  }
  if (spread && together) throw bad('master.together', 'cannot be set with master.spread: choose one placement');
  const placement: MasterPlacement = spread ? 'spread' : together ? 'together' : 'any';
  return { groups: [...new Set(groups)], leaseMs, driftBound, placement };
}

function resolveLogCleaning(value: PaxosNodeOptions['logCleaning']): LogCleaningSettings {
  if (value === undefined) return NODE_DEFAULTS.logCleaning;
  if (typeof value !== 'object' || value === null) {
    throw bad('logCleaning', 'must be {holdInstances, intervalMs, maxInstancesPerPass}');
  }
  const defaults = NODE_DEFAULTS.logCleaning;
  return {
    holdInstances: integer(value.holdInstances ?? defaults.holdInstances, 'logCleaning.holdInstances', 0, 2 ** 40),
    intervalMs: integer(value.intervalMs ?? defaults.intervalMs, 'logCleaning.intervalMs', 0, 2 ** 31 - 1),
    maxInstancesPerPass: integer(value.maxInstancesPerPass ?? defaults.maxInstancesPerPass,
      'logCleaning.maxInstancesPerPass', 1, 10_000_000),
  };
}

function resolveFollowerMaster(master: ResolvedNodeOptions['master'], isFollower: boolean): ResolvedNodeOptions['master'] {
  if (isFollower && master.groups.length > 0) throw bad('master.groups', 'must be empty on a follower (it never bids)');
  return master;
}

function resolveCallback<T>(value: T | undefined, field: string): T | undefined {
  if (value !== undefined && typeof value !== 'function') throw bad(field, 'must be a function');
  return value;
}

function resolveTimers(value: TimerHost | undefined): TimerHost | undefined {
  if (value !== undefined && typeof value?.setTimer !== 'function') throw bad('timers', 'must have a setTimer function');
  return value;
}

function resolveCheckpointTransfer(value: Partial<CheckpointTransferTiming> | undefined): CheckpointTransferTiming {
  if (value === undefined) return DEFAULT_CHECKPOINT_TRANSFER_TIMING;
  if (typeof value !== 'object' || value === null) throw bad('checkpointTransfer', 'must be an object');
  const timing = { ...DEFAULT_CHECKPOINT_TRANSFER_TIMING, ...value };
  for (const [name, amount] of Object.entries(timing)) {
    if (!(name in DEFAULT_CHECKPOINT_TRANSFER_TIMING)) throw bad(`checkpointTransfer.${name}`, 'is not an option');
    integer(amount, `checkpointTransfer.${name}`, 1, name === 'maxBytes' ? Number.MAX_SAFE_INTEGER : 2 ** 31);
  }
  // A piece must fit a frame with room for its header.
  integer(timing.chunkBytes, 'checkpointTransfer.chunkBytes', 1, 8 * 1024 * 1024);
  return timing;
}

function resolveTiming(value: Partial<ProtocolTiming> | undefined): ProtocolTiming {
  if (value === undefined) return DEFAULT_TIMING;
  const timing = { ...DEFAULT_TIMING, ...value };
  for (const [name, ms] of Object.entries(timing)) integer(ms, `timing.${name}`, 1, 2 ** 31);
  // A learner's future window keeps four budgets' worth of values: a larger one is memory, not speed.
  integer(timing.teachBytesBeyondAck, 'timing.teachBytesBeyondAck', 1, 256 * 1024 * 1024);
  return timing;
}

function integer(value: unknown, field: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw bad(field, `must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value;
}

function boolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') throw bad(field, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

function bad(field: string, problem: string): PaxosError {
  return new PaxosError('BAD_OPTIONS', `option ${field} ${problem}`, NOT_CHOSEN);
}

function localAddressOf(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || isIP(value) === 0) throw bad('localAddress', 'must be an IPv4 or IPv6 address');
  return value;
}
