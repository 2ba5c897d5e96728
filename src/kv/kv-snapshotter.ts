/**
 * Takes the KV service's snapshots in the background: per group, every `intervalMs` when the KV
 * state changed, after every `everyInstances` instances, after a membership change, or on demand
 * (`snapshotNow`).
 *
 * One snapshot is taken at a time. Each is a consistent cut: the state is copied synchronously at a
 * moment when every instance below the group's current instance N has executed and none at or
 * after it has touched the KV state, so the copy covers exactly [0, N - 1]. The copy is then encoded
 * and written in chunks while execution goes on. Only once the file is durable does the state
 * machine's checkpoint advance (`recordCheckpoint`): a checkpoint reported earlier would let a
 * restart skip instances whose effects a crash had lost. The file is written while the group's
 * snapshot files are held (KvCheckpoints.exclusive), and not at all when an install replaced the
 * state after the copy: a snapshot of the replaced state must never land beside the installed one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import type { PaxosNode } from '../node/paxos-node.js';
import type { Logger } from '../runtime/interfaces.js';
import type { KvCheckpoints } from './kv-checkpoints.js';
import { loadNewestSnapshot, snapshotDirectory, writeSnapshotFile } from './kv-snapshot-files.js';
import type { KvSnapshot } from './kv-snapshot-codec.js';
import type { KvStateMachine } from './kv-state-machine.js';

export interface KvSnapshotOptions {
  /** Snapshot a group whose KV state changed, this long after its last snapshot (default 60,000; 0: not by time). */
  readonly intervalMs?: number;
  /** Snapshot a group once this many instances executed after its last snapshot (default 10,000; 0: never by count). */
  readonly everyInstances?: number;
}

export const DEFAULT_SNAPSHOT_INTERVAL_MS = 60_000;
export const DEFAULT_SNAPSHOT_EVERY_INSTANCES = 10_000;
/** How often the triggers are checked. */
const POLL_MS = 1_000;
/** After a failed snapshot (a full disk, say), the triggers wait this long before trying the group again. */
const FAILURE_BACKOFF_MS = 10_000;
/** How long to wait for an instance whose execution is suspended (a batch awaiting another state machine). */
const CUT_WAIT_LIMIT_MS = 5_000;
const CUT_RETRY_MS = 5;

export interface TakenSnapshot {
  readonly group: number;
  /** The instance the snapshot covers: the group's checkpoint. */
  readonly instanceId: number;
  /** Undefined when nothing executed since the last snapshot (nothing was written). */
  readonly path: string | undefined;
  readonly bytes: number;
  /** Time to copy the state (execution waits for this part only). */
  readonly copyMs: number;
  readonly totalMs: number;
}

/**
 * Load each group's newest intact snapshot into the state machine, before the node starts: its
 * checkpoints then tell start-up to replay only the instances after them.
 */
export async function loadKvSnapshots(
  machine: KvStateMachine, dataDir: string, groups: number, logger: Logger,
): Promise<void> {
  for (let group = 0; group < groups; group++) {
    const snapshot = await loadNewestSnapshot(snapshotDirectory(dataDir, group), { group, groups }, logger);
    if (snapshot === undefined) continue;
    machine.restoreSnapshot(snapshot);
    logger.info('KV snapshot loaded', { group, instanceId: snapshot.instanceId, keys: snapshot.entries.size });
  }
}

/** Check the options before anything starts, so a bad one fails start-up with BAD_OPTIONS. */
export function resolveSnapshotOptions(options: KvSnapshotOptions = {}): Required<KvSnapshotOptions> {
  return {
    intervalMs: checkCount(options.intervalMs ?? DEFAULT_SNAPSHOT_INTERVAL_MS, 'snapshots.intervalMs'),
    everyInstances: checkCount(options.everyInstances ?? DEFAULT_SNAPSHOT_EVERY_INSTANCES, 'snapshots.everyInstances'),
  };
}

export class KvSnapshotter {
  private readonly intervalMs: number;
  private readonly everyInstances: number;
  private readonly lastTakenAt: number[];
  /** Groups with a snapshot queued or under way: the triggers do not queue another behind it. */
  private readonly pending = new Set<number>();
  private readonly retryAfter: number[];
  private readonly timer: ReturnType<typeof setInterval> | undefined;
  /** The snapshot being written, so the next one starts after it. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopping = false;
  private readonly groups: number;

  constructor(
    private readonly machine: KvStateMachine, private readonly node: PaxosNode, private readonly files: KvCheckpoints,
    private readonly logger: Logger, options: Required<KvSnapshotOptions>,
  ) {
    const groups = files.groups;
    this.groups = groups;
    this.intervalMs = options.intervalMs;
    this.everyInstances = options.everyInstances;
    this.lastTakenAt = Array.from({ length: groups }, () => performance.now());
    this.retryAfter = Array.from({ length: groups }, () => 0);
    if (this.intervalMs > 0 || this.everyInstances > 0) {
      this.timer = setInterval(() => this.check(), Math.min(POLL_MS, this.intervalMs || POLL_MS));
      this.timer.unref();
    }
  }

  /** Snapshot the group (every group when undefined) now, after any snapshot under way. */
  async snapshotNow(group?: number): Promise<TakenSnapshot[]> {
    const groups = group === undefined ? Array.from({ length: this.groups }, (_, index) => index) : [group];
    const taken: TakenSnapshot[] = [];
    for (const index of groups) taken.push(await this.enqueue(index));
    return taken;
  }

  /** Stop taking snapshots; one being written is abandoned (its temporary file removed). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    await this.queue.catch(() => {});
  }

  private check(): void {
    for (let group = 0; group < this.groups; group++) {
      const checkpoint = this.machine.checkpointInstanceId(group);
      const executed = this.node.nowInstanceId(group) - 1 - checkpoint;
      const changed = this.machine.lastExecutedInstanceId(group) > checkpoint;
      // Instances that changed nothing here (lease renewals) are cheap to replay: no rewrite for them.
      const byCount = this.everyInstances > 0 && changed && executed >= this.everyInstances;
      const since = performance.now() - (this.lastTakenAt[group] as number);
      const byTime = this.intervalMs > 0 && changed && since >= this.intervalMs;
      // A peer sends a checkpoint only when the group's membership is not newer than it (the
      // membership travels with it): after a change, a node added to an idle group waits for this.
      const byMembership = this.node.members(group).version > checkpoint;
      if ((!byCount && !byTime && !byMembership) || this.pending.has(group) ||
        performance.now() < (this.retryAfter[group] as number)) {
        continue;
      }
      this.pending.add(group);
      this.enqueue(group).catch((error: unknown) => {
        if (this.stopping) return;
        this.retryAfter[group] = performance.now() + FAILURE_BACKOFF_MS;
        this.logger.error('KV snapshot failed; the group is tried again later', { group, error: String(error) });
      }).finally(() => this.pending.delete(group));
    }
  }

  private enqueue(group: number): Promise<TakenSnapshot> {
    const next = this.queue.catch(() => {}).then(() => this.take(group));
    this.queue = next;
    return next;
  }

  private async take(group: number): Promise<TakenSnapshot> {
    if (this.stopping) throw new Error('the KV service is stopping');
    const began = performance.now();
    const cut = await this.cut(group);
    const copyMs = performance.now() - began;
    const nothing = (): TakenSnapshot => {
      const instanceId = this.machine.checkpointInstanceId(group);
      return { group, instanceId, path: undefined, bytes: 0, copyMs, totalMs: performance.now() - began };
    };
    if (cut === undefined) return nothing();
    const { snapshot, generation } = cut;
    const written = await this.files.exclusive(group, async () => {
      if (this.machine.stateGeneration(group) !== generation) return undefined;
      const file = await writeSnapshotFile(this.files.directory(group), snapshot, () => this.stopping);
      // Durable now (file and directory fsynced): only from here may start-up skip what it covers.
      this.machine.recordCheckpoint(group, snapshot.instanceId);
      return file;
    });
    if (written === undefined) return nothing();
    this.lastTakenAt[group] = performance.now();
    const totalMs = performance.now() - began;
    this.logger.info('KV snapshot written', {
      group, instanceId: snapshot.instanceId, keys: snapshot.keys.length, bytes: written.bytes,
      copyMs: Math.round(copyMs), totalMs: Math.round(totalMs),
    });
    return { group, instanceId: snapshot.instanceId, path: written.path, bytes: written.bytes, copyMs, totalMs };
  }

  /**
   * Copy the group's state at an instance boundary; undefined when the newest snapshot already
   * covers every executed instance. The runtime moves to instance N only once N - 1 has executed
   * in full, so when the KV state has not yet seen N it holds exactly the instances below N. It has
   * seen N while a batch of N is under way (suspended on another state machine's asynchronous
   * execution, between its entries): then wait for the batch to finish.
   */
  private async cut(group: number): Promise<{ snapshot: KvSnapshot; generation: number } | undefined> {
    // A batch can stay half executed for long (another state machine's entry failing and retried, a
    // halted group): give up then, so one group's snapshot never holds up the others' in the queue.
    const giveUpAt = performance.now() + CUT_WAIT_LIMIT_MS;
    for (;;) {
      if (this.stopping) throw new Error('the KV service is stopping');
      if (performance.now() > giveUpAt) {
        throw new Error(`group ${group}: no instance boundary to cut at within ${CUT_WAIT_LIMIT_MS} ms`);
      }
      const now = this.node.nowInstanceId(group);
      if (now - 1 <= this.machine.checkpointInstanceId(group)) return undefined;
      if (this.machine.lastExecutedInstanceId(group) < now) {
        const generation = this.machine.stateGeneration(group);
        return { snapshot: this.machine.captureSnapshot(group, now - 1), generation };
      }
      await sleep(CUT_RETRY_MS);
    }
  }
}

function checkCount(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new PaxosError('BAD_OPTIONS', `${what} must be an integer of at least 0, not ${String(value)}`, NOT_CHOSEN);
  }
  return value;
}
