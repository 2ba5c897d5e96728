/**
 * The watches of one node: every group's history (watch-history.ts), fed by the KV state machine as
 * it executes (it is the machine's change observer), and the watchers streaming from it.
 *
 * A watcher holds no queue of its own: it keeps, per group, its place in the group's ring (a
 * sequence number) and its cursor, and writes the next changes to its sink only while the sink
 * takes them (an HTTP response whose socket buffer is not full). So a slow watcher costs no memory
 * beyond its socket's buffer and one event (a node's watchers: at most maxWatchers times that, on
 * top of the rings); it falls behind in the shared ring, and when the ring
 * evicts a change it has not delivered, it is *dropped*: a final `dropped` event with the cursor of
 * the last change it delivered, and the stream ends (the client resumes from there, or re-lists).
 *
 * Order: each group's changes are delivered in the group's log order (so each key's in version
 * order); groups are interleaved in no particular order.
 */
import { formatCursor, laterPosition, type WatchPosition } from './watch-cursor.js';
import { DEFAULT_WATCH_HISTORY, WatchHistory, type WatchChange, type WatchHistoryLimits } from './watch-history.js';
import type { KvEntry } from './kv-state-machine.js';

/** What the KV state machine tells of its executions (see KvStateMachine's `observer`). */
export interface KvChangeObserver {
  /** The group executed an entry of `instanceId` (each entry of a batch, even one that changed nothing). */
  executed(group: number, instanceId: number): void;
  /** An entry of `instanceId` changed `key` to `entry` (a deletion: value undefined). */
  changed(group: number, instanceId: number, key: string, entry: KvEntry): void;
  /**
   * The group's state was replaced by a snapshot covering every instance up to `instanceId`, whose
   * last KV execution was at `lastKvInstanceId` (-1: none).
   */
  replaced(group: number, instanceId: number, lastKvInstanceId: number): void;
}

export interface WatchOptions {
  /** Each group's history on this node. */
  readonly history?: Partial<WatchHistoryLimits>;
  /** Watchers at once on this node (default 1,000); one more is refused with OVERLOADED. */
  readonly maxWatchers?: number;
}

/** Where a watcher's events go: `write` false means "full, wait for `drain`". */
export interface WatchSink {
  write(event: string): boolean;
  end(): void;
  /** Close at once, with whatever is still buffered (a consumer that stopped reading). */
  destroy?(): void;
}

/**
 * Heartbeats a watcher's sink may stay full before the watcher is dropped: a consumer that stopped
 * reading (or a dead peer whose socket never fails) would otherwise hold its slot for ever on a
 * quiet cluster, where no eviction drops it.
 */
export const STALLED_HEARTBEATS = 6;

export type WatchStart =
  | { readonly ok: true; readonly watcher: Watcher }
  /** A group's ring no longer holds the changes after the cursor (`oldest` is the oldest it can resume). */
  | { readonly ok: false; readonly reason: 'compacted'; readonly group: number; readonly oldest: WatchPosition }
  /** A group has not executed up to the cursor here yet. */
  | { readonly ok: false; readonly reason: 'behind'; readonly group: number; readonly head: WatchPosition };

export const DEFAULT_MAX_WATCHERS = 1_000;
const PROGRESS_POLL_MS = 50;

/** Which keys a watcher follows: those that start with `prefix`, or exactly `key`. */
export type KeyMatch = { readonly prefix: string } | { readonly key: string };

export class KvWatchHub implements KvChangeObserver {
  readonly histories: readonly WatchHistory[];
  readonly maxWatchers: number;
  private readonly watchers = new Set<Watcher>();
  private readonly progressWaiters = new Set<() => void>();
  private readonly changedGroups = new Set<number>();
  private wakeScheduled = false;
  /** Counters for /metrics and tests. */
  dropped = 0;
  compacted = 0;

  constructor(groups: number, options: WatchOptions = {}) {
    const limits = { ...DEFAULT_WATCH_HISTORY, ...options.history };
    this.histories = Array.from({ length: groups }, (_, group) => new WatchHistory(group, limits));
    this.maxWatchers = options.maxWatchers ?? DEFAULT_MAX_WATCHERS;
  }

  get watching(): number {
    return this.watchers.size;
  }

  executed(group: number, instanceId: number): void {
    this.history(group).executed(instanceId);
    this.wakeWaiters();
  }

  changed(group: number, instanceId: number, key: string, entry: KvEntry): void {
    this.history(group).changed(instanceId, key, entry.version, entry.value);
    this.wakeWatchersSoon(group);
    this.wakeWaiters();
  }

  /**
   * Watchers send the new changes on the next turn of the event loop, not here: this runs inside
   * the consensus execution path (KvStateMachine.execute), which must not pay for every watcher's
   * writes, and a batch's changes then go out together.
   */
  private wakeWatchersSoon(group: number): void {
    this.changedGroups.add(group);
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      const groups = [...this.changedGroups];
      this.changedGroups.clear();
      for (const watcher of [...this.watchers]) {
        for (const changed of groups) watcher.wake(changed);
      }
    });
  }

  replaced(group: number, instanceId: number, lastKvInstanceId = instanceId): void {
    this.history(group).reset(instanceId, lastKvInstanceId);
    // At once, while the ring is still empty: a watcher not following the group moves over the jump.
    for (const watcher of [...this.watchers]) watcher.groupReplaced(group);
    this.wakeWaiters();
  }

  /**
   * Let each group's head follow the group's next instance to execute here, of every state machine
   * (the node's `nowInstanceId`): see watch-history.ts for why heads need it to compare across nodes.
   */
  followExecution(nextInstance: (group: number) => number): void {
    for (const history of this.histories) history.followExecution(() => nextInstance(history.group));
  }

  /** The cursor of a watch starting now: every group's head. */
  headCursor(): WatchPosition[] {
    return this.histories.map((history) => history.head);
  }

  /**
   * Wait until this node has executed every group up to `cursor`, or `deadline` (performance.now()),
   * or abort. Resolves whether it got there.
   */
  async reach(cursor: readonly WatchPosition[], deadline: number, signal?: AbortSignal): Promise<boolean> {
    const reached = (): boolean =>
      this.histories.every((history, group) => history.reached(cursor[group] as WatchPosition));
    return await this.waitUntil(reached, deadline, signal);
  }

  /** Wait until `condition` holds after some execution, or `deadline` (performance.now()), or abort. */
  async waitUntil(condition: () => boolean, deadline: number, signal?: AbortSignal): Promise<boolean> {
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0 || signal?.aborted === true) return false;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.progressWaiters.delete(done);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        // Executions of other state machines also move heads (followExecution) without telling the
        // hub: look again now and then.
        const timer = setTimeout(done, Math.min(left, PROGRESS_POLL_MS));
        this.progressWaiters.add(done);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
    return true;
  }

  /**
   * Start a watcher of `prefix` from `cursor` (one position per group): it will deliver every change
   * at or after the cursor, from the rings. Synchronous, so no change can slip in between the check
   * and the registration. `keyGroup`: the only group whose changes can match (a key's group).
   * The caller checks the watcher count first (`full`), may write a first
   * event of its own, and then calls the watcher's `wake` to send the backlog (same tick: nothing
   * executes in between).
   */
  start(match: string | KeyMatch, cursor: readonly WatchPosition[], sink: WatchSink, keyGroup?: number): WatchStart {
    for (const history of this.histories) {
      const at = cursor[history.group] as WatchPosition;
      if (!history.reached(at)) return { ok: false, reason: 'behind', group: history.group, head: history.head };
      if (!history.covers(at)) {
        this.compacted++;
        return { ok: false, reason: 'compacted', group: history.group, oldest: history.oldest };
      }
    }
    const watcher = new Watcher(this, typeof match === 'string' ? { prefix: match } : match, cursor, sink, keyGroup);
    this.watchers.add(watcher);
    return { ok: true, watcher };
  }

  /**
   * Where a watch of one key from `fromVersion` (its changes to versions above it) starts in the
   * key's group, given the key's current version here: the position of its change to
   * `fromVersion + 1` when the ring holds it, the head when the key is at `fromVersion`; `behind`
   * when this node has not executed that version yet, `compacted` when the ring no longer holds it.
   */
  keyCursor(key: string, group: number, fromVersion: number, currentVersion: number): WatchPosition[] | WatchStart {
    const history = this.history(group);
    const cursor = this.headCursor();
    if (currentVersion < fromVersion) return { ok: false, reason: 'behind', group, head: history.head };
    if (currentVersion === fromVersion) return cursor;
    for (let seq = history.firstSeq; seq < history.endSeq; seq++) {
      const change = history.at(seq) as WatchChange;
      if (change.key === key && change.version === fromVersion + 1) {
        cursor[group] = change.position;
        return cursor;
      }
    }
    this.compacted++;
    return { ok: false, reason: 'compacted', group, oldest: history.oldest };
  }

  get full(): boolean {
    return this.watchers.size >= this.maxWatchers;
  }

  /** @internal */
  forget(watcher: Watcher): void {
    this.watchers.delete(watcher);
  }

  private history(group: number): WatchHistory {
    const history = this.histories[group];
    if (history === undefined) throw new RangeError(`group ${group} is not watched here`);
    return history;
  }

  private wakeWaiters(): void {
    if (this.progressWaiters.size === 0) return;
    for (const waiter of [...this.progressWaiters]) waiter();
  }
}

/**
 * Renders a change as an SSE `change` event; the `id:` is the cursor after it. The data is the
 * same for every watcher: rendered once and kept on the change (as long as the ring keeps it).
 */
export function changeEvent(change: WatchChange, cursor: string): string {
  change.data ??= JSON.stringify({
    group: change.group, key: change.key, version: change.version,
    value: change.value === undefined ? null : Buffer.from(change.value).toString('utf8'),
    deleted: change.value === undefined,
  });
  return `event: change\nid: ${cursor}\ndata: ${change.data}\n\n`;
}

export function controlEvent(name: string, cursor: string | undefined, data: Record<string, unknown>): string {
  return `event: ${name}\n${cursor === undefined ? '' : `id: ${cursor}\n`}data: ${JSON.stringify(data)}\n\n`;
}

export class Watcher {
  private readonly hub: KvWatchHub;
  private readonly matches: (key: string) => boolean;
  private readonly sink: WatchSink;
  /** Per group: the cursor (every change before it delivered or skipped) and the next ring entry. */
  private readonly cursor: WatchPosition[];
  private readonly next: number[];
  private readonly epochs: number[];
  private writable = true;
  /** Heartbeats in a row that found the sink full. */
  private stalledBeats = 0;
  private closed = false;
  private pumping = false;
  private lastSentCursor: string;
  /** Round robin over the groups, so a busy group does not starve the others' events. */
  private turn = 0;

  /** The only group whose changes can match (a key watch); undefined: any. */
  private readonly keyGroup: number | undefined;

  constructor(hub: KvWatchHub, match: KeyMatch, cursor: readonly WatchPosition[], sink: WatchSink, keyGroup?: number) {
    this.hub = hub;
    this.keyGroup = keyGroup;
    this.matches = 'key' in match ? (key) => key === match.key : (key) => key.startsWith(match.prefix);
    this.sink = sink;
    this.cursor = [...cursor];
    this.next = hub.histories.map((history) => history.seqFrom(cursor[history.group] as WatchPosition));
    this.epochs = hub.histories.map((history) => history.epoch);
    this.lastSentCursor = formatCursor(this.cursor);
  }

  get token(): string {
    return formatCursor(this.cursor);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** The sink can take more again. */
  drained(): void {
    this.writable = true;
    this.stalledBeats = 0;
    this.wake();
  }

  /** New changes (or a reset) in `group` (any group when left out): deliver what the sink takes. */
  wake(group?: number): void {
    if (this.closed) return;
    if (!this.checkRings(group)) return;
    if (!this.writable || this.pumping) return;
    this.pumping = true;
    try {
      this.pump();
    } finally {
      this.pumping = false;
    }
  }

  /**
   * A heartbeat: a `progress` event carrying the cursor when it moved without an event (changes of
   * other keys, or a group caught up with its head), so a resume after a quiet time is not compacted
   * needlessly; else an SSE comment, which keeps proxies from closing the connection and makes a
   * dead connection fail a write.
   */
  heartbeat(): void {
    if (this.closed) return;
    if (!this.checkRings()) return;
    // A full socket has data on its way already (and a dead one will fail it): adding to it would
    // only grow its buffer. One full for too long is dropped.
    if (!this.writable) {
      if (++this.stalledBeats >= STALLED_HEARTBEATS) {
        this.hub.dropped++;
        this.finish('dropped', { reason: `this watcher took no data for ${STALLED_HEARTBEATS} heartbeats; resume ` +
          'from the cursor' });
        this.sink.destroy?.();
      }
      return;
    }
    for (const history of this.hub.histories) {
      if (this.next[history.group] === history.endSeq) {
        this.cursor[history.group] = laterPosition(this.cursor[history.group] as WatchPosition, history.head);
      }
    }
    const token = this.token;
    if (token !== this.lastSentCursor) {
      this.lastSentCursor = token;
      this.writable = this.sink.write(controlEvent('progress', token, {}));
    } else {
      this.writable = this.sink.write(': heartbeat\n\n');
    }
  }

  /**
   * A snapshot replaced `group`'s state here (called at once, the ring still empty): this node
   * jumped over changes it never executed, so a watcher following the group cannot go on here. It
   * ends with `unavailable` and its cursor, which another node (or this one, if the cursor is recent
   * enough) resumes: another node's ring may well hold what this one skipped. A watcher whose key
   * is in another group lets its cursor for this group jump too: none of its changes could match.
   */
  groupReplaced(group: number): void {
    if (this.closed) return;
    const history = this.hub.histories[group] as WatchHistory;
    if (this.keyGroup !== undefined && this.keyGroup !== group) {
      this.epochs[group] = history.epoch;
      this.next[group] = history.endSeq;
      this.cursor[group] = laterPosition(this.cursor[group] as WatchPosition, history.head);
      return;
    }
    this.finish('unavailable', { group, reason: `group ${group}'s state was replaced by a snapshot on this node ` +
      '(it skipped changes it never executed): resume from the cursor on another node' });
  }

  /** Stop streaming (the client went away, or the server closes). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.hub.forget(this);
  }

  /** Drop or compact this watcher when a ring lost changes it has not delivered; false when it did. */
  private checkRings(only?: number): boolean {
    for (const history of this.hub.histories) {
      if (only !== undefined && history.group !== only) continue;
      const group = history.group;
      if (history.epoch !== this.epochs[group]) {
        // groupReplaced handles a reset as it happens; this is a guard, never a silent gap.
        this.groupReplaced(group);
        if (this.closed) return false;
      }
      if ((this.next[group] as number) < history.firstSeq) {
        this.hub.dropped++;
        this.finish('dropped', { group, reason: 'this watcher fell too far behind (the node\'s history of group ' +
          `${group} moved past changes it had not delivered); resume from the cursor or list again` });
        return false;
      }
    }
    return true;
  }

  private pump(): void {
    const histories = this.hub.histories;
    let idleRounds = 0;
    while (this.writable && !this.closed && idleRounds < histories.length) {
      const history = histories[this.turn % histories.length] as WatchHistory;
      this.turn++;
      const group = history.group;
      let sent = false;
      // Skip changes of other keys; send at most one matching change per turn.
      for (let seq = this.next[group] as number; seq < history.endSeq; seq++) {
        const change = history.at(seq) as WatchChange;
        this.next[group] = seq + 1;
        this.cursor[group] = { instance: change.position.instance, index: change.position.index + 1 };
        if (!this.matches(change.key)) continue;
        const token = this.token;
        this.lastSentCursor = token;
        this.writable = this.sink.write(changeEvent(change, token));
        sent = true;
        break;
      }
      idleRounds = sent ? 0 : idleRounds + 1;
    }
  }

  private finish(event: 'dropped' | 'unavailable', data: Record<string, unknown>): void {
    const cursor = this.token;
    this.close();
    this.sink.write(controlEvent(event, undefined, { ...data, cursor }));
    this.sink.end();
  }
}

