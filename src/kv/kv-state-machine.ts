/**
 * The replicated state of the KV service (PhxKV's PhxKVSM, plus fencing): per group, a map from key
 * to its value and version, the group's current fence, and the last instance executed.
 *
 * Versioned writes (PhxKV): a never-written key has version 0 and a deleted key keeps its version
 * (a delete stores a tombstone). A put or delete may name the version it expects; it applies only if
 * that is the key's current version, then the key's version becomes current + 1. Besides optimistic
 * concurrency, this makes a client's retry of a conditional write harmless if the first try was chosen.
 * A delete of an absent key (never written, or deleted) whose expected version, if any, holds changes
 * nothing and answers KEY_NOT_FOUND with the key's version; that is decided here, from the replicated
 * state, so every node and every replay agrees. Deletes in logs written before this rule (command
 * kind 2, see kv-command.ts) keep their old effect: a tombstone at the next version.
 *
 * Fencing: a node that becomes master of a group proposes a fence carrying the master version it
 * holds; a fence applies only if its master version is above the current fence's, so a late fence from
 * an earlier master cannot take the group back. Puts and deletes carry the fence of the node that
 * proposed them and apply only if it is the group's current fence. Hence only the node that fenced
 * the group most recently can write, and once its fence has executed locally it has seen every write
 * that will ever be applied before its own; that is what lets a master serve reads from its own state.
 *
 * Execution is deterministic: every node executes the same commands in the same order and reaches the
 * same state and outcome. Malformed commands produce an outcome, never an exception, because a throw
 * would make the runtime retry the instance forever on every node.
 *
 * Sessions (exactly-once writes, src/runtime/session-table.ts): a register command opens a session in
 * the group and answers its id; a put or delete that names a session and a sequence number is checked
 * against the group's table *before* the fence, so that a retry through a new master of a write the
 * old master got chosen gets the stored reply instead of FENCED, and never applies twice. A write that
 * is refused for its fence (or its group) leaves the session as it was: it was not applied, and its
 * retry under the new fence is the same command. Outcomes that settle the write (applied,
 * VERSION_CONFLICT, KEY_NOT_FOUND) are stored as the session's reply.
 *
 * Checkpoints: `captureSnapshot` copies a group's state for a snapshot writer (kv-snapshotter.ts),
 * `restoreSnapshot` loads one before the node starts, and `checkpointInstanceId` reports only
 * what a durable snapshot holds: `recordCheckpoint` is called once the snapshot file is on disk, so
 * start-up never skips an instance whose effects could still be lost.
 *
 * Checkpoint transfer: `openSnapshot` offers a peer that fell behind the newest durable snapshot
 * file, and `installSnapshot` replaces a group's state with one received, through the node's snapshot
 * files (kv-checkpoints.ts): the file is committed first, then the memory swapped, so a restart
 * loads what was installed. Without snapshot files (no data directory) there is nothing to send and
 * an install is refused: it could not be durable.
 */
import { DEFAULT_MAX_SESSIONS, SessionTable } from '../runtime/session-table.js';
import type { ExecuteInput, ReceivedSnapshot, StateMachine, StateMachineSnapshot } from '../runtime/interfaces.js';
import type { KvCheckpoints } from './kv-checkpoints.js';
import { groupOfKey } from './key-hash.js';
import { decodeKvCommand, KvCommandError, type Fence, type KvCommand } from './kv-command.js';
import type { DecodedKvSnapshot, KvSnapshot } from './kv-snapshot-codec.js';
import type { SessionStamp } from './kv-command.js';
import type { KvChangeObserver } from './watch-hub.js';

export const KV_STATE_MACHINE_ID = 1;

/**
 * The sessions a node keeps over all its groups: about 152 bytes each in memory, so about 40 MB.
 * Each group gets an equal share (at most the table's own 65,536, at least 1,024), so a node of 64
 * groups does not keep 64 × 65,536 (about 640 MB). Derived from the group count only, which every
 * node of a cluster shares: evictions must happen alike on every node.
 */
export const KV_SESSIONS_PER_NODE = 262_144;
const MIN_SESSIONS_PER_GROUP = 1_024;

/** The session table's bound for each of `groups` groups (see KV_SESSIONS_PER_NODE). */
export function kvSessionsPerGroup(groups: number): number {
  return Math.min(DEFAULT_MAX_SESSIONS, Math.max(MIN_SESSIONS_PER_GROUP, Math.floor(KV_SESSIONS_PER_NODE / groups)));
}

/** What a session remembers of its last write: the outcomes that settle a write. */
export type KvSessionReply =
  | { readonly ok: true; readonly version: number }
  | { readonly ok: false; readonly code: 'VERSION_CONFLICT' | 'KEY_NOT_FOUND'; readonly version: number };

export type KvOutcome =
  /**
   * put/delete: the key's new version; fence: the fence's master version; register: 0, and
   * `session` is the new session's id. `duplicate`: a session's retry, answered from its stored reply.
   */
  | { readonly ok: true; readonly version: number; readonly session?: number; readonly duplicate?: true }
  /** The key's current version. */
  | { readonly ok: false; readonly code: 'VERSION_CONFLICT'; readonly version: number; readonly duplicate?: true }
  /** delete: the key is absent (never written, or deleted), so nothing changed; its current version. */
  | { readonly ok: false; readonly code: 'KEY_NOT_FOUND'; readonly version: number; readonly duplicate?: true }
  /**
   * The session expired or was evicted (`registered`: an earlier copy of this write may have been
   * applied before that), or never was (nothing of it was ever applied). This copy was not applied.
   */
  | { readonly ok: false; readonly code: 'SESSION_EXPIRED'; readonly message: string; readonly registered: boolean }
  /**
   * The session executed this number (or a later one) already: this copy was not applied, but an
   * earlier copy of this number may have been (its answer is no longer kept).
   */
  | { readonly ok: false; readonly code: 'STALE_SEQUENCE'; readonly lastSequence: number }
  /** The group's current fence (a GroupFence, so it also says where that master serves HTTP). */
  | { readonly ok: false; readonly code: 'FENCED'; readonly fence: Fence | undefined }
  | { readonly ok: false; readonly code: 'MALFORMED'; readonly message: string }
  /** The key does not hash to the group the command was proposed in. */
  | { readonly ok: false; readonly code: 'WRONG_GROUP'; readonly message: string };

export interface GroupFence extends Fence {
  readonly httpAddress: string;
}

export interface KvEntry {
  /** undefined: never written, or deleted. */
  readonly value: Uint8Array | undefined;
  readonly version: number;
}

export interface KvStats {
  /** Live keys (tombstones excluded), over all groups. */
  readonly keys: number;
  readonly tombstones: number;
  /** Total bytes of live values. */
  readonly valueBytes: number;
}

interface GroupState {
  entries: Map<string, KvEntry>;
  fence: GroupFence | undefined;
  lastInstanceId: number;
  /** The instance the newest durable snapshot covers (-1: none). */
  checkpoint: number;
  /** Counts the installs that replaced the state: a copy taken before one is of a state gone. */
  generation: number;
  sessions: SessionTable<KvSessionReply>;
}

const NEVER_WRITTEN: KvEntry = Object.freeze({ value: undefined, version: 0 });

export class KvStateMachine implements StateMachine {
  readonly id = KV_STATE_MACHINE_ID;
  private readonly groups: GroupState[];
  // Running totals so stats() stays O(1) however many keys there are.
  private liveKeys = 0;
  private tombstones = 0;
  private valueBytes = 0;

  private readonly checkpoints: KvCheckpoints | undefined;
  /** Told of every execution and change, and of state replaced by a snapshot (watches, watch-hub.ts). */
  private readonly observer: KvChangeObserver | undefined;

  /**
   * `checkpoints`: the node's snapshot files, for sending and installing snapshots.
   * `maxSessionsPerGroup` (default kvSessionsPerGroup(groups): 65,536 up to 4 groups, 4,096 for
   * 64): must be the same on every node, as evictions must happen alike.
   */
  constructor(options: {
    readonly groups: number; readonly checkpoints?: KvCheckpoints; readonly maxSessionsPerGroup?: number;
    readonly observer?: KvChangeObserver;
  }) {
    if (!Number.isInteger(options.groups) || options.groups < 1) {
      throw new RangeError(`a KV state machine has at least 1 group, not ${options.groups}`);
    }
    const maxSessions = options.maxSessionsPerGroup ?? kvSessionsPerGroup(options.groups);
    this.groups = Array.from({ length: options.groups }, () => ({
      entries: new Map<string, KvEntry>(), fence: undefined, lastInstanceId: -1, checkpoint: -1, generation: 0,
      sessions: new SessionTable<KvSessionReply>(maxSessions),
    }));
    if (options.checkpoints !== undefined && options.checkpoints.groups !== options.groups) {
      throw new RangeError(`snapshot files of ${options.checkpoints.groups} groups for a state machine of ${options.groups}`);
    }
    this.checkpoints = options.checkpoints;
    this.observer = options.observer;
  }

  execute({ groupIndex, instanceId, value }: ExecuteInput): KvOutcome {
    const group = this.group(groupIndex);
    // Equal is allowed: the runtime executes every entry of a batch with the batch's instance id.
    if (!Number.isSafeInteger(instanceId) || instanceId < 0 || instanceId < group.lastInstanceId) {
      throw new Error(`group ${groupIndex}: instance ${instanceId} after instance ${group.lastInstanceId}`);
    }
    group.lastInstanceId = instanceId;
    this.observer?.executed(groupIndex, instanceId);
    let command: KvCommand;
    try {
      command = decodeKvCommand(value);
    } catch (error) {
      if (error instanceof KvCommandError) return { ok: false, code: 'MALFORMED', message: error.message };
      throw error;
    }
    if (command.kind === 'fence') return this.applyFence(group, command.fence, command.httpAddress);
    if (command.kind === 'register') {
      if (!sameFence(command.fence, group.fence)) return { ok: false, code: 'FENCED', fence: group.fence };
      return { ok: true, version: 0, session: group.sessions.register(command.at, command.ttlMs) };
    }
    const owner = groupOfKey(command.key, this.groups.length);
    if (owner !== groupIndex) {
      return { ok: false, code: 'WRONG_GROUP', message: `the key belongs to group ${owner}, not ${groupIndex}` };
    }
    const outcome = command.session === undefined ? this.applyWrite(group, command)
      : this.applySessionWrite(group, command, command.session);
    if (outcome.ok && outcome.duplicate !== true && this.observer !== undefined) {
      this.observer.changed(groupIndex, instanceId, command.key, group.entries.get(command.key) ?? NEVER_WRITTEN);
    }
    return outcome;
  }

  private applySessionWrite(
    group: GroupState, command: Extract<KvCommand, { kind: 'put' | 'delete' }>, stamp: SessionStamp,
  ): KvOutcome {
    const check = group.sessions.check(stamp.id, stamp.sequence, stamp.at);
    switch (check.kind) {
      case 'duplicate': return { ...check.reply, duplicate: true };
      case 'stale': return { ok: false, code: 'STALE_SEQUENCE', lastSequence: check.lastSequence };
      case 'expired': case 'unknown':
        return check.kind === 'expired'
          ? { ok: false, code: 'SESSION_EXPIRED', registered: true, message: `session ${stamp.id} expired (or was ` +
            `evicted): this copy was not applied; an earlier copy of number ${stamp.sequence} may have been` }
          : { ok: false, code: 'SESSION_EXPIRED', registered: false,
            message: `session ${stamp.id} was never registered in this group; the write was not applied` };
      case 'new': break;
    }
    const outcome = this.applyWrite(group, command);
    if (outcome.ok || outcome.code === 'VERSION_CONFLICT' || outcome.code === 'KEY_NOT_FOUND') {
      group.sessions.record(stamp.id, stamp.sequence, outcome as KvSessionReply);
    }
    return outcome;
  }

  private applyWrite(group: GroupState, command: Extract<KvCommand, { kind: 'put' | 'delete' }>): KvOutcome {
    if (!sameFence(command.fence, group.fence)) return { ok: false, code: 'FENCED', fence: group.fence };
    const current = group.entries.get(command.key) ?? NEVER_WRITTEN;
    if (command.expectedVersion !== undefined && command.expectedVersion !== current.version) {
      return { ok: false, code: 'VERSION_CONFLICT', version: current.version };
    }
    if (command.kind === 'delete' && current.value === undefined && command.tombstoneIfAbsent !== true) {
      return { ok: false, code: 'KEY_NOT_FOUND', version: current.version };
    }
    // decodeKvCommand already copied the value out of the batch, so it can be kept as it is.
    const stored = command.kind === 'put' ? command.value : undefined;
    const version = current.version + 1;
    this.store(group, command.key, current, { value: stored, version });
    return { ok: true, version };
  }

  /** The key's value and version in a group (value undefined, version 0: never written). Do not mutate the value. */
  read(groupIndex: number, key: string): KvEntry {
    return this.group(groupIndex).entries.get(key) ?? NEVER_WRITTEN;
  }

  /**
   * The group's live keys (tombstones left out) that start with `prefix` and come after `after`, in
   * string order, at most `limit` of them; `more`: there are others after the last. It scans every
   * key of the group (a sorted index would make it proportional to the page), so listing a group of
   * a million keys costs about as much as one snapshot copy.
   */
  scan(
    groupIndex: number, prefix: string, after: string | undefined, limit: number,
  ): { readonly entries: readonly (readonly [string, KvEntry])[]; readonly more: boolean } {
    const matched: [string, KvEntry][] = [];
    for (const [key, entry] of this.group(groupIndex).entries) {
      if (entry.value === undefined || !key.startsWith(prefix) || (after !== undefined && key <= after)) continue;
      matched.push([key, entry]);
    }
    matched.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    return { entries: matched.slice(0, limit), more: matched.length > limit };
  }

  /** Each group's bound on its sessions. */
  get maxSessionsPerGroup(): number {
    return (this.groups[0] as GroupState).sessions.maxSessions;
  }

  /** The group's sessions, their log time and next id (for status and tests). */
  sessionStats(groupIndex: number): { readonly sessions: number; readonly logTime: number } {
    const { sessions } = this.group(groupIndex);
    return { sessions: sessions.size, logTime: sessions.now };
  }

  fence(groupIndex: number): GroupFence | undefined {
    return this.group(groupIndex).fence;
  }

  /** -1 until the group executes its first instance. */
  lastExecutedInstanceId(groupIndex: number): number {
    return this.group(groupIndex).lastInstanceId;
  }

  /** The instance the newest durable snapshot of the group covers: start-up replays only after it. */
  checkpointInstanceId(groupIndex: number): number {
    return this.group(groupIndex).checkpoint;
  }

  /** A snapshot of the group covering `instanceId` is durable. Checkpoints only move forward. */
  recordCheckpoint(groupIndex: number, instanceId: number): void {
    const group = this.group(groupIndex);
    group.checkpoint = Math.max(group.checkpoint, instanceId);
  }

  /**
   * A copy of the group's state for a snapshot covering `instanceId`. The caller must call it
   * between instances (every instance up to `instanceId` executed, none after). It copies only the
   * map's keys and entries (12 ms for a million keys on a 2-core EPYC VM): entries are frozen and
   * values never mutated, so they can be shared with the live map.
   */
  captureSnapshot(groupIndex: number, instanceId: number): KvSnapshot {
    const group = this.group(groupIndex);
    if (group.lastInstanceId > instanceId) {
      throw new Error(`group ${groupIndex}: a snapshot at ${instanceId} after executing ${group.lastInstanceId}`);
    }
    return {
      group: groupIndex, groups: this.groups.length, instanceId, lastExecutedInstanceId: group.lastInstanceId,
      fence: group.fence, keys: Array.from(group.entries.keys()), entries: Array.from(group.entries.values()),
      sessions: group.sessions.capture(),
    };
  }

  /** Start from a snapshot instead of an empty group (before the node starts: nothing executed yet). */
  restoreSnapshot(snapshot: DecodedKvSnapshot): void {
    const group = this.group(snapshot.group);
    if (group.lastInstanceId !== -1 || group.entries.size > 0) {
      throw new Error(`group ${snapshot.group} has executed already; a snapshot is loaded before start-up`);
    }
    this.replace(group, snapshot);
  }

  /** Changes each time an install replaces the group's state (see `captureSnapshot`'s callers). */
  stateGeneration(groupIndex: number): number {
    return this.group(groupIndex).generation;
  }

  /** The newest durable snapshot of the group, at most at `checkpointInstanceId`; undefined: none. */
  async openSnapshot(groupIndex: number): Promise<StateMachineSnapshot | undefined> {
    const group = this.group(groupIndex);
    if (this.checkpoints === undefined || group.checkpoint < 0) return undefined;
    return await this.checkpoints.open(groupIndex, group.checkpoint);
  }

  /**
   * Replace the group's state with a received snapshot: its file is verified and committed first
   * (kv-snapshot-install.ts), then the state swapped at once. A rejection leaves both as they were.
   */
  async installSnapshot(groupIndex: number, snapshot: ReceivedSnapshot): Promise<void> {
    this.group(groupIndex);
    if (this.checkpoints === undefined) {
      throw new Error(`group ${groupIndex}: this KV keeps no snapshot files, so it cannot install a snapshot durably`);
    }
    await this.checkpoints.install(groupIndex, snapshot, (decoded) => {
      const group = this.group(groupIndex);
      this.replace(group, decoded);
      group.generation++;
    });
  }

  /** The group's state becomes the snapshot's, running totals included. */
  private replace(group: GroupState, snapshot: DecodedKvSnapshot): void {
    if (snapshot.groups !== this.groups.length) throw new RangeError(`a snapshot of ${snapshot.groups} groups`);
    if (this.groups[snapshot.group] !== group) throw new RangeError(`a snapshot of group ${snapshot.group}`);
    // Everything that can throw comes before the first change: a refused snapshot leaves the group whole.
    // A snapshot of the format before sessions has none: an empty table, as the group had then.
    const sessions = new SessionTable<KvSessionReply>(group.sessions.maxSessions);
    if (snapshot.sessions !== undefined) sessions.restore(snapshot.sessions);
    for (const entry of group.entries.values()) this.count(entry, -1);
    for (const entry of snapshot.entries.values()) this.count(entry, +1);
    // The decoded map becomes the group's (it is built for this; copying it would double the load time).
    group.entries = snapshot.entries;
    group.fence = snapshot.fence;
    group.sessions = sessions;
    group.lastInstanceId = snapshot.lastExecutedInstanceId;
    // Set, not raised: an install reports exactly the instance it installed.
    group.checkpoint = snapshot.instanceId;
    this.observer?.replaced(snapshot.group, snapshot.instanceId, snapshot.lastExecutedInstanceId);
  }

  stats(): KvStats {
    return { keys: this.liveKeys, tombstones: this.tombstones, valueBytes: this.valueBytes };
  }

  private applyFence(group: GroupState, fence: Fence, httpAddress: string): KvOutcome {
    if (group.fence !== undefined && fence.masterVersion <= group.fence.masterVersion) {
      return { ok: false, code: 'FENCED', fence: group.fence };
    }
    group.fence = Object.freeze({ nodeId: fence.nodeId, masterVersion: fence.masterVersion, httpAddress });
    return { ok: true, version: fence.masterVersion };
  }

  private store(group: GroupState, key: string, previous: KvEntry, next: KvEntry): void {
    if (previous !== NEVER_WRITTEN) this.count(previous, -1);
    this.count(next, +1);
    group.entries.set(key, Object.freeze(next));
  }

  private count(entry: KvEntry, sign: 1 | -1): void {
    if (entry.value === undefined) {
      this.tombstones += sign;
    } else {
      this.liveKeys += sign;
      this.valueBytes += sign * entry.value.length;
    }
  }

  private group(groupIndex: number): GroupState {
    const group = Number.isInteger(groupIndex) ? this.groups[groupIndex] : undefined;
    if (group === undefined) throw new RangeError(`group ${groupIndex} is not in [0, ${this.groups.length - 1}]`);
    return group;
  }
}

function sameFence(a: Fence, b: Fence | undefined): boolean {
  return b !== undefined && a.nodeId === b.nodeId && a.masterVersion === b.masterVersion;
}
