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
  private headPosition: WatchPosition = { instance: -1, index: 0 };
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

  get head(): WatchPosition {
    return this.headPosition;
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
   * The group's state was replaced by a snapshot covering every instance up to `instance`: the
   * history before it is unknown here, so nothing older than after it can be resumed.
   */
  reset(instance: number): void {
    this.entries.length = 0;
    this.first = 0;
    this.bytes = 0;
    this.headPosition = { instance: instance + 1, index: 0 };
    this.oldestPosition = this.headPosition;
    this.resets++;
  }

  /** Whether every change before `cursor` has executed here (else this node is behind the cursor). */
  reached(cursor: WatchPosition): boolean {
    return comparePositions(this.headPosition, cursor) >= 0;
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
