/**
 * One group's recent changes on this node, for watches (`GET /v1/watch`): a ring bounded in changes
 * and bytes, fed as the group's KV state machine executes, plus where the node is in the group.
 *
 * - `head`: the position up to which this node has executed the group's changes (every change
 *   before it is executed here; the next change gets a position >= it). A watch never streams a
 *   group from a node whose head is behind the watch's cursor: that node would show the past again.
 * - `oldest`: the oldest cursor the ring can resume: every change at a position >= it is in the
 *   ring (or still to come). Evicting a change, or replacing the state by a snapshot (at start-up,
 *   or installed from a peer, jumping over history this node never executed), raises it; a cursor
 *   below it is *compacted*: the changes it misses are gone here, and saying so beats a silent gap.
 *
 * Heads must compare across nodes: a cursor taken on one node is resumed on another. The KV state
 * machine sees only the group's KV instances (a master lease bid or a membership change goes to
 * other state machines), so a head moved by KV executions alone would depend on how the node got
 * its state: a node that executed the log would stop at its last KV change {L, k}, while a node
 * that restored a snapshot at S >= L could only say {S + 1, 0}, and each would call the other's
 * cursor compacted or behind although their states are the same. So the head is also raised to
 * {N, 0}, where N is the group's next instance to execute on this node (`followExecution`: every
 * instance below N, KV or not, is executed or covered by a snapshot here). On every node the head
 * is then {N, 0} between instances, a function of the log position only, and the heartbeats'
 * progress events carry watchers' cursors past instances with no KV change. After a snapshot the
 * ring is empty, but a cursor from the instance after the snapshot's last KV instance on can still
 * be resumed: no change was made between there and the snapshot (`reset`'s `lastKvInstance`).
 *
 * Entries carry a local sequence number (1, 2, ... for this ring's life) so that a watcher keeps
 * its place in the ring as one number and notices when the entries it has not delivered were evicted.
 */
import { comparePositions, type WatchPosition } from './watch-cursor.js';

export interface WatchChange {
  readonly seq: number;
  readonly group: number;
  readonly position: WatchPosition;
  readonly key: string;
  readonly version: number;
  /** undefined: deleted. */
  readonly value: Uint8Array | undefined;
  /** The change's SSE data (JSON), rendered once by the first watcher that sends it (watch-hub.ts). */
  data?: string;
}

export interface WatchHistoryLimits {
  /** Changes kept per group (default 10,000). */
  readonly maxChanges: number;
  /** Bytes of keys and values kept per group (default 16 MiB; at least the newest change is kept). */
  readonly maxBytes: number;
}

export const DEFAULT_WATCH_HISTORY: WatchHistoryLimits = { maxChanges: 10_000, maxBytes: 16 * 1024 * 1024 };

/** What a change costs in the ring: its key and value, plus a fixed overhead. */
function costOf(key: string, value: Uint8Array | undefined): number {
  return 64 + 2 * key.length + (value?.length ?? 0);
}

export class WatchHistory {
  readonly group: number;
  private readonly limits: WatchHistoryLimits;
  private readonly entries: WatchChange[] = [];
  /** entries[0] is entries[first]; the array is compacted now and then rather than shifted each time. */
  private first = 0;
  private bytes = 0;
  private nextSeq = 1;
  /** After the last KV execution here: where the next change goes. */
  private headPosition: WatchPosition = { instance: -1, index: 0 };
  /** The group's next instance to execute on this node, as far as known (never decreases). */
  private nextInstance = -1;
  private nextInstanceOf: (() => number) | undefined;
  private oldestPosition: WatchPosition = { instance: -1, index: 0 };
  /** Raised by each reset: watchers of an earlier epoch missed the jump. */
  private resets = 0;

  constructor(group: number, limits: WatchHistoryLimits = DEFAULT_WATCH_HISTORY) {
    if (!Number.isInteger(limits.maxChanges) || limits.maxChanges < 1 || !Number.isInteger(limits.maxBytes) ||
      limits.maxBytes < 1) {
      throw new RangeError(`watch history limits are positive integers, not ${JSON.stringify(limits)}`);
    }
    this.group = group;
    this.limits = limits;
  }

  /** Every change before it is executed here (the file's comment says why it follows all instances). */
  get head(): WatchPosition {
    if (this.nextInstanceOf !== undefined) this.nextInstance = Math.max(this.nextInstance, this.nextInstanceOf());
    if (this.nextInstance <= this.headPosition.instance) return this.headPosition;
    return { instance: this.nextInstance, index: 0 };
  }

  /** Tell the head the group's next instance to execute on this node, of every state machine. */
  followExecution(nextInstance: () => number): void {
    this.nextInstanceOf = nextInstance;
  }

  get oldest(): WatchPosition {
    return this.oldestPosition;
  }

  get epoch(): number {
    return this.resets;
  }

  /** The sequence number the next change will get; a watcher at it has delivered everything. */
  get endSeq(): number {
    return this.nextSeq;
  }

  /** The sequence number of the oldest change held (endSeq when empty). */
  get firstSeq(): number {
    return this.entries[this.first]?.seq ?? this.nextSeq;
  }

  get size(): number {
    return this.entries.length - this.first;
  }

  /** The group executed `instance` (each entry of a batch calls this with the batch's instance). */
  executed(instance: number): void {
    if (instance > this.headPosition.instance) this.headPosition = { instance, index: 0 };
  }

  /** A change was applied at `instance`; returns it, and whether older changes were evicted for it. */
  changed(instance: number, key: string, version: number, value: Uint8Array | undefined): WatchChange {
    this.executed(instance);
    const position = this.headPosition;
    this.headPosition = { instance, index: position.index + 1 };
    const change: WatchChange = { seq: this.nextSeq++, group: this.group, position, key, version, value };
    this.entries.push(change);
    this.bytes += costOf(key, value);
    while (this.size > 1 && (this.size > this.limits.maxChanges || this.bytes > this.limits.maxBytes)) this.evict();
    return change;
  }

  /**
   * The group's state was replaced by a snapshot covering every instance up to `instance`, whose
   * last KV execution was at `lastKvInstance`: the changes before it are unknown here. A cursor from
   * `{lastKvInstance + 1, 0}` on misses nothing (no change was made from there through `instance`),
   * so it can still be resumed here; an older one is compacted (this node cannot tell whether the
   * last KV instance made changes after the cursor).
   */
  reset(instance: number, lastKvInstance = instance): void {
    this.entries.length = 0;
    this.first = 0;
    this.bytes = 0;
    this.headPosition = { instance: instance + 1, index: 0 };
    this.nextInstance = Math.max(this.nextInstance, instance + 1);
    this.oldestPosition = { instance: Math.min(instance, lastKvInstance) + 1, index: 0 };
    this.resets++;
  }

  /** Whether every change before `cursor` has executed here (else this node is behind the cursor). */
  reached(cursor: WatchPosition): boolean {
    return comparePositions(this.head, cursor) >= 0;
  }

  /** Whether the ring holds every change from `cursor` on. */
  covers(cursor: WatchPosition): boolean {
    return comparePositions(cursor, this.oldestPosition) >= 0;
  }

  /** The sequence number of the first change at or after `cursor` (endSeq if none yet). Check `covers` first. */
  seqFrom(cursor: WatchPosition): number {
    let low = this.first;
    let high = this.entries.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (comparePositions((this.entries[middle] as WatchChange).position, cursor) < 0) low = middle + 1;
      else high = middle;
    }
    return this.entries[low]?.seq ?? this.nextSeq;
  }

  /** The change with this sequence number, if the ring still holds it. */
  at(seq: number): WatchChange | undefined {
    const firstSeq = this.firstSeq;
    if (seq < firstSeq || seq >= this.nextSeq) return undefined;
    return this.entries[this.first + (seq - firstSeq)];
  }

  private evict(): void {
    const gone = this.entries[this.first] as WatchChange;
    this.first++;
    this.bytes -= costOf(gone.key, gone.value);
    this.oldestPosition = { instance: gone.position.instance, index: gone.position.index + 1 };
    if (this.first > 1024 && this.first * 2 > this.entries.length) {
      this.entries.splice(0, this.first);
      this.first = 0;
    }
  }
}
