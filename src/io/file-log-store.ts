/**
 * The default LogStore: an append-only log in pre-allocated segment files, shared by every group of
 * a node, with an in-memory index rebuilt at start-up.
 *
 * Group commit: a flush starts at the end of the event-loop turn in which the first `put` arrived
 * (setImmediate), so every group's puts of that turn share it; while one write + fdatasync runs,
 * every `put` that arrives (from any group) waits in a queue, and the next flush writes them all
 * with one write and one fdatasync. A small durable write (up to `inlineWriteBytes`, the usual
 * write of one instance) is made on the event loop's own thread: it blocks the loop for about one
 * fdatasync, but skips the round trip to libuv's thread pool and back, which cost more than the
 * blocking on this project's machine (see docs/transport-and-storage.md). Larger writes, and all
 * of them while inline ones are slow (InlineWritePolicy), run on the thread pool.
 *
 * Durability: `put` with sync resolves only after fdatasync of the data; segment creation, rolling
 * and deletion are made durable by fsync of the directory; metadata is replaced atomically.
 * Start-up truncates a torn tail (a damaged frame that nothing valid follows) and refuses to start
 * on damage anywhere else, naming the file and offset. After a failed write the store refuses
 * further writes (STORAGE_UNAVAILABLE): the groups halt rather than continue on state it could not
 * persist. `resume` brings it back once writing works again (see there).
 */
import { join } from 'node:path';
import type { AcceptorRecord } from '../core/ready.js';
import { hasErrorCode, NOT_CHOSEN, PaxosError } from '../errors.js';
import { SILENT_LOGGER, type LogStore, type Logger, type PendingCheckpoint } from '../runtime/interfaces.js';
import { NODE_FILE_SYSTEM, type FileHandle, type FileSystem } from './file-system.js';
import {
  decodeFrame, encodeRecord, frameBytes, FRAME_HEADER_BYTES, MAX_RECORD_BYTES, RECORD_FIXED_BYTES,
} from './record-codec.js';
import {
  DEFAULT_INLINE_WRITE_BYTES, DEFAULT_SLOW_INLINE_WRITE_MS, INLINE_WRITE_PAUSE_MS, InlineWritePolicy,
} from './inline-write-policy.js';
import { createSegment, listSegments, noteRecord, scanSegment, segmentName, type Segment } from './segment.js';
import { emptyGroupMeta, readMeta, writeMeta, type GroupMeta } from './store-meta.js';

export interface FileLogStoreOptions {
  /** The store's directory; created if missing. */
  readonly directory: string;
  /** fdatasync on `put({sync: true})` (default true). Off trades durability for speed. */
  readonly sync?: boolean;
  /** Size of each pre-allocated segment (default 8 MiB). */
  readonly segmentBytes?: number;
  /** Open for inspection only: nothing is written, created, repaired or deleted. */
  readonly readOnly?: boolean;
  readonly fileSystem?: FileSystem;
  readonly logger?: Logger;
  /**
   * Durable writes of up to this many bytes are made on the event loop's thread (default 64 KiB;
   * 0 sends every write to the thread pool). Only with a file system whose handles offer it.
   */
  readonly inlineWriteBytes?: number;
  /**
   * Inline writes slower than this on average (default 1 ms) go to the thread pool for a second,
   * then one inline write probes again: past it the loop loses more to the blocking than inline
   * saves (see InlineWritePolicy).
   */
  readonly slowInlineWriteMs?: number;
  /**
   * Called just before an inline write blocks the loop: a node sends what it has queued first, so
   * messages that do not depend on this write do not wait for it (PaxosNode wires its transport).
   */
  readonly beforeInlineWrite?: () => void;
  /**
   * The clock inline writes are timed by, in ms (default performance.now). The simulator passes its
   * own, so a run's choice between inline and thread-pool writes does not depend on the machine.
   */
  readonly inlineWriteClock?: () => number;
  /**
   * Runs a flush once the current turn's puts are queued (default setImmediate). The simulator
   * passes its own, deterministic, deferral.
   */
  readonly deferFlush?: (flush: () => void) => void;
  /** Test-only: skip the fdatasync (to prove the crash tests catch it). */
  readonly faults?: { readonly skipDatasync?: boolean };
}

/** A fresh store holds two segments (the active one and its spare): 16 MiB. */
export const DEFAULT_SEGMENT_BYTES = 8 * 1024 * 1024;
const TWO_32 = 0x1_0000_0000;
/** getMany reads at most this many records, spanning at most this many bytes, in one read. */
const MAX_RUN_RECORDS = 256;
const MAX_RUN_BYTES = 4 * 1024 * 1024;

interface PendingPut {
  readonly groupIndex: number;
  readonly epoch: number;
  readonly records: readonly AcceptorRecord[];
  readonly sync: boolean;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** The in-memory state a resume rebuilds from disk. */
interface StoreState {
  readonly segments: Map<number, Segment>;
  readonly groups: Map<number, GroupIndex>;
  readonly meta: Map<number, GroupMeta>;
  readonly durableMeta: Map<number, GroupMeta>;
  readonly active: Segment | null;
  readonly activeUnsynced: boolean;
  readonly nextSegment: Promise<Segment> | null;
  readonly nextSequenceReserved: number | null;
  readonly nextWrite: number;
  readonly recovery: RecoveryReport;
}

interface GroupIndex {
  /** instance → segment sequence × 2^32 + offset of its newest record. */
  readonly locations: Map<number, number>;
  maxInstanceId: number | undefined;
}

/** What start-up found, for `log inspect` and the logs. */
export interface RecoveryReport {
  readonly segments: number;
  readonly records: number;
  readonly truncatedTail: { readonly file: string; readonly offset: number; readonly reason: string } | null;
}

export class FileLogStore implements LogStore {
  private readonly options: Required<Omit<FileLogStoreOptions, 'faults' | 'inlineWriteBytes' | 'slowInlineWriteMs'>> &
    Pick<FileLogStoreOptions, 'faults'>;
  private readonly fs: FileSystem;
  private readonly logDirectory: string;
  private segments = new Map<number, Segment>();
  private active: Segment | null = null;
  /** The next segment, being pre-allocated while the active one fills. */
  private nextSegment: Promise<Segment> | null = null;
  private nextSequenceReserved: number | null = null;
  /** The active segment may hold data not yet fdatasynced (written without sync, or by an earlier life). */
  private activeUnsynced = false;
  private syncEnabled: boolean;
  private groups = new Map<number, GroupIndex>();
  private meta = new Map<number, GroupMeta>();
  /** The metadata as last written to disk: what a failed metadata write falls back to. */
  private durableMeta = new Map<number, GroupMeta>();
  private queue: PendingPut[] = [];
  private flushing = false;
  /** A flush is deferred to the end of the turn (see startFlush). */
  private flushQueued = false;
  private readonly startFlushBound = (): void => {
    this.flushQueued = false;
    if (!this.flushing && this.queue.length > 0) void this.flushLoop();
  };
  private metaWrites: Promise<void> = Promise.resolve();
  private metaWritesInFlight = 0;
  /** Metadata writes in flight that puts must wait for (see updateMeta). */
  private putHoldingMetaWrites = 0;
  /** Puts waiting for in-flight metadata writes (see put). */
  private readonly deferred: PendingPut[] = [];
  private failure: PaxosError | null = null;
  /** The bytes of the log write that failed: unknown on disk until `resume` zeroes them. */
  private failedWrite: { readonly segment: Segment; readonly start: number; readonly end: number } | null = null;
  /** The log write under way, for `failedWrite`. */
  private writing: { readonly segment: Segment; readonly start: number; readonly end: number } | null = null;
  /** A `resume` under way: reads wait for the store it rebuilds. */
  private resuming: Promise<void> | null = null;
  /** Reads of segment files under way, and unlinks of dead segments: a resume waits for them. */
  private readsInFlight = 0;
  /** While a resume rebuilds the store: what it had, for the answers that cannot wait (diskBytes). */
  private previous: StoreState | null = null;
  private unlinking = 0;
  private readonly failureListeners: (() => void)[] = [];
  /** The number of the next group-commit write (stored in its frames; see record-codec.ts). */
  private nextWrite = 0;
  private closed = false;
  /** Which durable writes are made on the loop's thread (see inlineWriteBytes, slowInlineWriteMs). */
  private readonly inlineWrites: InlineWritePolicy;
  recovery: RecoveryReport = { segments: 0, records: 0, truncatedTail: null };
  /** Flushes done and records written, for benchmarks and metrics. */
  readonly stats = { flushes: 0, records: 0, bytes: 0 };

  private constructor(options: FileLogStoreOptions) {
    this.options = {
      directory: options.directory, sync: options.sync ?? true,
      segmentBytes: options.segmentBytes ?? DEFAULT_SEGMENT_BYTES,
      readOnly: options.readOnly ?? false, fileSystem: options.fileSystem ?? NODE_FILE_SYSTEM,
      logger: options.logger ?? SILENT_LOGGER, faults: options.faults,
      deferFlush: options.deferFlush ?? setImmediate,
      beforeInlineWrite: options.beforeInlineWrite ?? ((): void => {}),
      inlineWriteClock: options.inlineWriteClock ?? ((): number => performance.now()),
    };
    this.fs = this.options.fileSystem;
    this.inlineWrites = new InlineWritePolicy({
      maxBytes: options.inlineWriteBytes ?? DEFAULT_INLINE_WRITE_BYTES,
      slowMs: options.slowInlineWriteMs ?? DEFAULT_SLOW_INLINE_WRITE_MS,
      pauseMs: INLINE_WRITE_PAUSE_MS, now: this.options.inlineWriteClock,
      onPause: (averageMs) => this.options.logger.info(
        'durable writes are slow; they go to the thread pool for a while', { averageMs: Math.round(averageMs * 10) / 10 }),
    });
    this.syncEnabled = this.options.sync;
    this.logDirectory = join(options.directory, 'log');
  }

  static async open(options: FileLogStoreOptions): Promise<FileLogStore> {
    const segmentBytes = options.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isSafeInteger(segmentBytes) || segmentBytes < 4096) {
      throw new PaxosError('BAD_OPTIONS',
        `segmentBytes must be an integer of at least 4096; got ${segmentBytes}`, NOT_CHOSEN);
    }
    const store = new FileLogStore(options);
    try {
      await store.recover();
      // The spare segment is made now rather than in the background: a node that has no room for
      // it would otherwise start, then halt at its first roll.
      await store.nextSegment;
    } catch (error) {
      await store.closeHandles().catch(() => undefined);
      throw store.options.readOnly || !isWriteError(error) ? error : new PaxosError('STORAGE_UNAVAILABLE',
        `cannot start in ${store.options.directory}: ${describe(error)}` + (errorCode(error) === 'ENOSPC'
          ? ` (the log needs about ${2 * Math.ceil(segmentBytes / 2 ** 20)} MiB free for its two segments)` : ''),
        { ...NOT_CHOSEN, cause: error });
    }
    return store;
  }

  /**
   * Why the store refuses writes, or undefined while it takes them: `reason` is the error code of
   * the failed operation (ENOSPC, EIO, EROFS...), or STORAGE_CORRUPT (see resume).
   */
  storageFailure(): { readonly reason: string; readonly message: string } | undefined {
    if (this.failure === null) return undefined;
    const reason = this.failure.code === 'STORAGE_CORRUPT' ? 'STORAGE_CORRUPT' : errorCode(this.failure.cause) ?? 'EIO';
    return { reason, message: this.failure.message };
  }

  /**
   * Call `listener` each time the store starts refusing writes (a write failed), whichever write it
   * was: a metadata write of a checkpoint install or of log cleaning halts no group by itself.
   */
  onFailure(listener: () => void): void {
    this.failureListeners.push(listener);
  }

  private fail(error: PaxosError): void {
    const first = this.failure === null;
    this.failure = error;
    // After the current turn, so listeners never run inside the store's own error handling.
    if (first) queueMicrotask(() => { for (const listener of this.failureListeners) listener(); });
  }

  /**
   * After a failed write: try to take writes again, and throw (still refusing them) if the disk does
   * not allow it yet. What a failed write or fsync left on disk is unknown (a failed fsync may have
   * dropped the dirty pages while the page cache still shows them), so nothing of it is trusted:
   * the bytes of the failed log write are overwritten with zeros durably (it was never acknowledged;
   * the zeros are what the pre-allocated segment held), and then the whole store is rebuilt from
   * disk as at start-up: metadata, segments, index, torn tail repaired. Its spare segment must be
   * made again and the metadata rewritten (proving there is room for both) before it resumes. The
   * caller rebuilds whatever it holds in memory from the store afterwards (the node rebuilds its
   * groups), since the store's in-memory state before the failure is not what it resumes from.
   * Damage found on disk as it rebuilds is final: the store then refuses writes, and every later
   * resume, with STORAGE_CORRUPT (a restart names the damage and refuses to start on it).
   */
  resume(): Promise<void> {
    if (this.failure === null) return Promise.resolve();
    if (this.closed) return Promise.reject(new PaxosError('STOPPED', 'the log store is closed', NOT_CHOSEN));
    // Damage found on disk does not go away by trying again.
    if (this.failure.code === 'STORAGE_CORRUPT') return Promise.reject(this.failure);
    this.resuming ??= this.rebuildFromDisk().finally(() => {
      this.resuming = null;
    });
    return this.resuming;
  }

  private async rebuildFromDisk(): Promise<void> {
    // Nothing may use the segments' handles or the index while they are rebuilt: the writes and
    // metadata writes under way, the reads (new ones wait for `resuming`) and the unlinks.
    while (this.flushing || this.queue.length > 0 || this.deferred.length > 0 || this.metaWritesInFlight > 0 ||
      this.readsInFlight > 0 || this.unlinking > 0) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    let rebuilt: StoreState | null = null;
    try {
      const failed = this.failedWrite;
      if (failed !== null) {
        const handle = await this.fs.open(failed.segment.path, false);
        try {
          await handle.write(Buffer.alloc(failed.end - failed.start), failed.start);
          await handle.datasync();
        } finally {
          await handle.close();
        }
        this.failedWrite = null;
      }
      await this.closeHandles();
      // Rebuilt in fresh structures: if this attempt fails part way, the store goes on answering
      // reads from what it had (a whole index of what is on disk), not from half of a new one.
      rebuilt = this.state();
      this.previous = rebuilt;
      this.segments = new Map();
      this.groups = new Map();
      this.active = null;
      this.activeUnsynced = false;
      this.nextSequenceReserved = null;
      await this.recover();
      await this.nextSegment;
      await writeMeta(this.fs, this.options.directory, this.durableMeta);
    } catch (error) {
      if (rebuilt !== null) {
        await this.closeHandles().catch(() => undefined);
        this.restoreState(rebuilt);
      }
      this.previous = null;
      this.failure = hasErrorCode(error, 'STORAGE_CORRUPT')
        ? new PaxosError('STORAGE_CORRUPT', `resuming in ${this.options.directory}: ${describe(error)}`,
          { ...NOT_CHOSEN, cause: error })
        : storageError('resuming', this.options.directory, error);
      throw this.failure;
    }
    this.previous = null;
    this.failure = null;
    this.options.logger.warn('the log store takes writes again', { directory: this.options.directory });
  }

  /** What `recover` rebuilds, to be put back when a resume fails part way. */
  private state(): StoreState {
    return {
      segments: this.segments, groups: this.groups, meta: this.meta, durableMeta: this.durableMeta,
      active: this.active, activeUnsynced: this.activeUnsynced, nextSegment: this.nextSegment,
      nextSequenceReserved: this.nextSequenceReserved, nextWrite: this.nextWrite, recovery: this.recovery,
    };
  }

  private restoreState(state: StoreState): void {
    this.segments = state.segments;
    this.groups = state.groups;
    this.meta = state.meta;
    this.durableMeta = state.durableMeta;
    this.active = state.active;
    this.activeUnsynced = state.activeUnsynced;
    this.nextSegment = state.nextSegment;
    this.nextSequenceReserved = state.nextSequenceReserved;
    this.nextWrite = state.nextWrite;
    this.recovery = state.recovery;
  }

  /** Reads wait while a resume rebuilds the store (its index and handles are being replaced). */
  private async untilResumed(): Promise<void> {
    while (this.resuming !== null) await this.resuming.catch(() => undefined);
  }

  /**
   * Wait out a resume, then count a read in flight in the same step as the last check: a resume
   * that began between the two would not wait for the read, and would close its handles under it.
   */
  private async beginRead(): Promise<void> {
    while (this.resuming !== null) await this.resuming.catch(() => undefined);
    this.readsInFlight++;
  }

  /** Turn fdatasync on or off at run time (PhxPaxos SetLogSync). */
  setSync(sync: boolean): void {
    this.syncEnabled = sync;
  }

  put(groupIndex: number, records: readonly AcceptorRecord[], options: { readonly sync: boolean }): Promise<void> {
    const refusal = this.writeRefusal();
    if (refusal !== null) return Promise.reject(refusal);
    if (records.length === 0) return Promise.resolve();
    const epoch = this.groupMeta(groupIndex).epoch;
    return new Promise<void>((resolve, reject) => {
      const put: PendingPut = { groupIndex, epoch, records, sync: options.sync, resolve, reject };
      // A put issued while a metadata change (a clear's new epoch, a low-water mark) is on its way
      // to disk waits for it, its records must never depend on metadata a crash could still undo;
      // and every put after it waits too, so puts are written in call order.
      if (this.putHoldingMetaWrites > 0 || this.deferred.length > 0) {
        this.deferred.push(put);
        return;
      }
      this.queue.push(put);
      this.startFlush();
    });
  }

  /**
   * Flush at the end of this turn unless a flush runs (it takes the queue when its write is done):
   * every put this turn issues, whichever group it is for, goes into the same write and fdatasync.
   */
  private startFlush(): void {
    if (this.flushing || this.flushQueued) return;
    this.flushQueued = true;
    this.options.deferFlush(this.startFlushBound);
  }

  /** Metadata is durable again: puts that waited for it join the write queue, in call order. */
  private releaseDeferred(): void {
    if (this.putHoldingMetaWrites > 0 || this.deferred.length === 0) return;
    this.queue.push(...this.deferred.splice(0));
    this.startFlush();
  }

  async get(groupIndex: number, instanceId: number): Promise<AcceptorRecord | undefined> {
    this.assertOpen();
    await this.beginRead();
    try {
      return await this.read(groupIndex, instanceId);
    } finally {
      this.readsInFlight--;
    }
  }

  /** `get`, once no resume is under way (the caller counts the read in flight). */
  private async read(groupIndex: number, instanceId: number): Promise<AcceptorRecord | undefined> {
    const location = this.groups.get(groupIndex)?.locations.get(instanceId);
    if (location === undefined) return undefined;
    const sequence = Math.floor(location / TWO_32);
    const offset = location % TWO_32;
    const segment = this.segments.get(sequence);
    if (segment === undefined) return undefined;
    let bytes: Buffer;
    try {
      const handle = await this.handleOf(segment);
      const header = await handle.read(FRAME_HEADER_BYTES, offset);
      // Never trust a length read back from disk: a damaged one must not size the read (a 4 GiB read
      // aborts the process). An implausible length is then reported by decodeFrame from the header.
      const bodyLength = header.length === FRAME_HEADER_BYTES ? Math.min(header.readUInt32LE(0), MAX_RECORD_BYTES) : 0;
      bytes = await handle.read(FRAME_HEADER_BYTES + bodyLength, offset);
    } catch (error) {
      // Log cleaning took the segment out under the read (its records are all below their marks):
      // gone, not damaged, so "not in the log", as a moment later. A teacher streaming them ends its
      // session and its learner goes to a checkpoint; failing the read would halt the group for good
      // over a race with its own cleaning (simulator seed 130).
      if (segment.unlinked) return undefined;
      throw error;
    }
    const frame = decodeFrame(bytes, 0);
    if (frame.kind !== 'record' || frame.stored.record.instanceId !== instanceId || frame.stored.groupIndex !== groupIndex) {
      throw new PaxosError('STORAGE_CORRUPT', `${segment.path}: record of group ${groupIndex} instance ${instanceId} ` +
        `at offset ${offset} no longer reads back (${frame.kind === 'bad' ? frame.reason : 'wrong record'})`);
    }
    return frame.stored.record;
  }

  /**
   * The records of `instanceIds` (undefined where there is none), as `get` would give each. Records
   * that lie one after another in a segment (a teacher's window of consecutive instances, as they
   * were written) are read together: one read for the run instead of two per record. With
   * `maxBytes`, only a first part of them is read (see readableWithin), at least one.
   */
  async getMany(
    groupIndex: number, instanceIds: readonly number[], options?: { readonly maxBytes?: number },
  ): Promise<(AcceptorRecord | undefined)[]> {
    this.assertOpen();
    await this.beginRead();
    try {
      const locations = this.groups.get(groupIndex)?.locations;
      const count = readableWithin(locations, instanceIds, options?.maxBytes ?? Infinity);
      return await this.readMany(groupIndex, count === instanceIds.length ? instanceIds : instanceIds.slice(0, count));
    } finally {
      this.readsInFlight--;
    }
  }

  private async readMany(groupIndex: number, instanceIds: readonly number[]): Promise<(AcceptorRecord | undefined)[]> {
    const locations = this.groups.get(groupIndex)?.locations;
    const results: (AcceptorRecord | undefined)[] = instanceIds.map(() => undefined);
    const runs: Promise<void>[] = [];
    let index = 0;
    while (index < instanceIds.length) {
      const location = locations?.get(instanceIds[index] as number);
      if (location === undefined) {
        index++;
        continue;
      }
      const sequence = Math.floor(location / TWO_32);
      const first = location % TWO_32;
      const offsets = [first];
      let end = index + 1;
      for (; end < instanceIds.length && end - index < MAX_RUN_RECORDS; end++) {
        const next = locations?.get(instanceIds[end] as number);
        if (next === undefined || Math.floor(next / TWO_32) !== sequence) break;
        const offset = next % TWO_32;
        if (offset <= (offsets.at(-1) as number) || offset - first > MAX_RUN_BYTES) break;
        offsets.push(offset);
      }
      const start = index;
      runs.push(offsets.length === 1
        ? this.read(groupIndex, instanceIds[start] as number).then((record) => { results[start] = record; })
        : this.readRun(groupIndex, sequence, instanceIds.slice(start, end), offsets).then((records) => {
          records.forEach((record, at) => { results[start + at] = record; });
        }));
      index = end;
    }
    await Promise.all(runs);
    return results;
  }

  /** Records at increasing `offsets` of one segment: the last one's header, then one read of them all. */
  private async readRun(
    groupIndex: number, sequence: number, instanceIds: readonly number[], offsets: readonly number[],
  ): Promise<(AcceptorRecord | undefined)[]> {
    const segment = this.segments.get(sequence);
    if (segment === undefined) return instanceIds.map(() => undefined);
    const first = offsets[0] as number;
    const last = offsets.at(-1) as number;
    let bytes: Buffer;
    try {
      const handle = await this.handleOf(segment);
      const header = await handle.read(FRAME_HEADER_BYTES, last);
      // As in get: a damaged length never sizes a read; the frame then fails to decode below.
      const lastBody = header.length === FRAME_HEADER_BYTES ? Math.min(header.readUInt32LE(0), MAX_RECORD_BYTES) : 0;
      bytes = await handle.read(last - first + FRAME_HEADER_BYTES + lastBody, first);
    } catch (error) {
      if (segment.unlinked) return instanceIds.map(() => undefined); // as in read
      throw error;
    }
    return instanceIds.map((instanceId, at) => {
      const offset = offsets[at] as number;
      const frame = decodeFrame(bytes, offset - first);
      if (frame.kind !== 'record' || frame.stored.record.instanceId !== instanceId ||
        frame.stored.groupIndex !== groupIndex) {
        throw new PaxosError('STORAGE_CORRUPT', `${segment.path}: record of group ${groupIndex} instance ` +
          `${instanceId} at offset ${offset} no longer reads back (${frame.kind === 'bad' ? frame.reason : 'wrong record'})`);
      }
      return frame.stored.record;
    });
  }

  async maxInstanceId(groupIndex: number): Promise<number | undefined> {
    this.assertOpen();
    await this.untilResumed();
    return this.groups.get(groupIndex)?.maxInstanceId;
  }

  async minChosenInstanceId(groupIndex: number): Promise<number> {
    this.assertOpen();
    await this.untilResumed();
    return this.groupMeta(groupIndex).minChosenInstanceId;
  }

  setMinChosenInstanceId(groupIndex: number, instanceId: number): Promise<void> {
    return this.updateMeta(groupIndex, (meta) => {
      meta.minChosenInstanceId = instanceId;
    });
  }

  async deleteBelow(groupIndex: number, instanceId: number): Promise<void> {
    const previous = this.groupMeta(groupIndex).minChosenInstanceId;
    // The new low-water mark is durable before any record goes: a crash after this point finds the
    // records below it ignored at start-up, never a log with a hole the mark does not explain. Puts
    // need not wait for it (see updateMeta): they are all of instances at or above the mark.
    await this.updateMeta(groupIndex, (meta) => {
      meta.minChosenInstanceId = Math.max(meta.minChosenInstanceId, instanceId);
    }, { holdsPuts: false });
    // A resume that began meanwhile rebuilds the index from disk, where the new mark already is.
    if (this.resuming !== null) return;
    const index = this.groups.get(groupIndex);
    if (index !== undefined && instanceId > previous) {
      // The index holds nothing below the previous mark, so walking up from it costs what is
      // deleted; a jump much wider than the index (a checkpoint install) walks the index instead.
      if (instanceId - previous <= index.locations.size) {
        for (let key = previous; key < instanceId; key++) index.locations.delete(key);
      } else {
        for (const key of index.locations.keys()) if (key < instanceId) index.locations.delete(key);
      }
      if (index.locations.size === 0) index.maxInstanceId = undefined;
    }
    await this.unlinkDeadSegments();
  }

  /** Writes made to the segment files since the store opened (each may carry several groups' records). */
  flushes(): number {
    return this.stats.flushes;
  }

  /** Bytes of the segment files (pre-allocated space included): the log's footprint on disk. */
  diskBytes(): number {
    let bytes = 0;
    for (const segment of (this.previous?.segments ?? this.segments).values()) bytes += segment.capacity;
    return bytes;
  }

  async systemVariables(groupIndex: number): Promise<Uint8Array | undefined> {
    this.assertOpen();
    await this.untilResumed();
    return this.groupMeta(groupIndex).systemVariables?.slice();
  }

  setSystemVariables(groupIndex: number, value: Uint8Array): Promise<void> {
    return this.updateMeta(groupIndex, (meta) => {
      meta.systemVariables = value.slice();
    });
  }

  async masterVariables(groupIndex: number): Promise<Uint8Array | undefined> {
    this.assertOpen();
    await this.untilResumed();
    return this.groupMeta(groupIndex).masterVariables?.slice();
  }

  setMasterVariables(groupIndex: number, value: Uint8Array): Promise<void> {
    return this.updateMeta(groupIndex, (meta) => {
      meta.masterVariables = value.slice();
    });
  }

  async pendingCheckpoint(groupIndex: number): Promise<PendingCheckpoint | undefined> {
    this.assertOpen();
    await this.untilResumed();
    return this.groupMeta(groupIndex).pendingCheckpoint;
  }

  setPendingCheckpoint(groupIndex: number, pending: PendingCheckpoint | undefined): Promise<void> {
    return this.updateMeta(groupIndex, (meta) => {
      meta.pendingCheckpoint = pending;
    });
  }

  /** Forget every record of the group (a new epoch), keeping its system and master variables. */
  async clear(groupIndex: number): Promise<void> {
    const refusal = this.writeRefusal();
    if (refusal !== null) throw refusal;
    const written = this.updateMeta(groupIndex, (meta) => {
      meta.epoch++;
      meta.minChosenInstanceId = 0;
    });
    this.groups.delete(groupIndex);
    await written;
    if (this.resuming === null) await this.unlinkDeadSegments();
  }

  /** Wait for queued writes, then close every file. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.flushing || this.queue.length > 0 || this.deferred.length > 0 || this.metaWritesInFlight > 0) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    await this.metaWrites.catch(() => undefined);
    await this.resuming?.catch(() => undefined);
    this.closed = true;
    await this.closeHandles();
  }

  /** Close every open segment, the spare (once made) included. */
  private async closeHandles(): Promise<void> {
    const next = this.nextSegment;
    this.nextSegment = null;
    if (next !== null) {
      const segment = await next.catch(() => null);
      if (segment !== null) await segment.handle?.close();
    }
    for (const segment of this.segments.values()) {
      const opening = segment.opening;
      segment.opening = null;
      await opening?.catch(() => undefined);
      await segment.handle?.close();
      segment.handle = null;
    }
  }

  /** Every live record of a group in instance order (for inspection and checkpoints). */
  async *records(groupIndex: number, from = 0, to = Infinity): AsyncGenerator<AcceptorRecord> {
    await this.untilResumed();
    const index = this.groups.get(groupIndex);
    if (index === undefined) return;
    const instances = [...index.locations.keys()].filter((id) => id >= from && id <= to).sort((a, b) => a - b);
    for (const instanceId of instances) {
      const record = await this.get(groupIndex, instanceId);
      if (record !== undefined) yield record;
    }
  }

  get groupIndexes(): number[] {
    const groups = this.previous?.groups ?? this.groups;
    const meta = this.previous?.meta ?? this.meta;
    return [...new Set([...groups.keys(), ...meta.keys()])].sort((a, b) => a - b);
  }

  private async flushLoop(): Promise<void> {
    this.flushing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue;
        this.queue = [];
        const refusal = this.writeRefusal();
        if (refusal !== null) {
          for (const put of batch) put.reject(refusal);
          continue;
        }
        try {
          await this.writeBatch(batch);
          for (const put of batch) put.resolve();
        } catch (error) {
          this.failedWrite = this.writing;
          this.writing = null;
          this.fail(storageError('log write', this.active?.path ?? this.logDirectory, error));
          this.options.logger.error('log write failed; the store refuses further writes', { error: String(error) });
          for (const put of batch) put.reject(this.failure);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** One write and (if any put asked for it) one fdatasync for the whole batch. */
  private async writeBatch(batch: readonly PendingPut[]): Promise<void> {
    let bytes = 0;
    let records = 0;
    for (const put of batch) {
      records += put.records.length;
      for (const record of put.records) bytes += frameBytes(record);
    }
    const segment = this.activeHasRoom(bytes) ? this.active as Segment : await this.activeSegmentWithRoom(bytes);
    const start = segment.writeOffset;
    const tag = { write: this.nextWrite, start };
    const buffer = Buffer.allocUnsafe(bytes);
    const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    const offsets = new Array<number>(records);
    let offset = 0;
    let position = 0;
    for (const put of batch) {
      for (const record of put.records) {
        offsets[position++] = start + offset;
        offset = encodeRecord(buffer, offset, put.groupIndex, put.epoch, tag, record, view);
      }
    }
    this.nextWrite++;
    this.writing = { segment, start, end: start + bytes };
    const handle = segment.handle ?? await this.handleOf(segment);
    if (this.syncEnabled && batch.some((put) => put.sync) && this.options.faults?.skipDatasync !== true) {
      // O_DSYNC makes only this write durable; after unsynced writes to the file, fdatasync covers them too.
      if (handle.writeDurablySync !== undefined && !this.activeUnsynced && this.inlineWrites.allows(bytes)) {
        this.beforeInlineWrite();
        const began = this.options.inlineWriteClock();
        handle.writeDurablySync(buffer, start);
        this.inlineWrites.noteWrite(this.options.inlineWriteClock() - began);
      } else if (handle.writeDurably !== undefined && !this.activeUnsynced) {
        await handle.writeDurably(buffer, start);
      } else {
        await handle.write(buffer, start);
        await handle.datasync();
      }
      this.activeUnsynced = false;
    } else {
      await handle.write(buffer, start);
      this.activeUnsynced = true;
    }
    position = 0;
    for (const put of batch) {
      this.indexPut(put, segment, offsets, position);
      position += put.records.length;
    }
    segment.writeOffset = start + bytes;
    this.writing = null;
    this.stats.flushes++;
    this.stats.records += records;
    this.stats.bytes += bytes;
  }

  private beforeInlineWrite(): void {
    try {
      this.options.beforeInlineWrite();
    } catch (error) {
      // Sending early is an optimisation: a failure there must not fail the write.
      this.options.logger.error('beforeInlineWrite threw; ignored', { error: String(error) });
    }
  }

  /** Index the records of one put (one group and epoch), at `offsets[from...]`. */
  private indexPut(put: PendingPut, segment: Segment, offsets: readonly number[], from: number): void {
    let highest = -1;
    for (const record of put.records) if (record.instanceId > highest) highest = record.instanceId;
    if (highest >= 0) noteRecord(segment, put.groupIndex, put.epoch, highest);
    const meta = this.groupMeta(put.groupIndex);
    if (put.epoch !== meta.epoch) return;
    let index = this.groups.get(put.groupIndex);
    if (index === undefined) {
      index = { locations: new Map(), maxInstanceId: undefined };
      this.groups.set(put.groupIndex, index);
    }
    const base = segment.sequence * TWO_32;
    let position = from;
    for (const record of put.records) {
      const offset = offsets[position++] as number;
      if (record.instanceId < meta.minChosenInstanceId) continue;
      index.locations.set(record.instanceId, base + offset);
      if (index.maxInstanceId === undefined || record.instanceId > index.maxInstanceId) {
        index.maxInstanceId = record.instanceId;
      }
    }
  }

  private activeHasRoom(bytes: number): boolean {
    const active = this.active;
    return active !== null && active.writeOffset + bytes <= active.capacity;
  }

  /** Index one record found at start-up. */
  private index(groupIndex: number, epoch: number, instanceId: number, segment: Segment, offset: number): void {
    noteRecord(segment, groupIndex, epoch, instanceId);
    const meta = this.groupMeta(groupIndex);
    if (epoch !== meta.epoch || instanceId < meta.minChosenInstanceId) return;
    let index = this.groups.get(groupIndex);
    if (index === undefined) {
      index = { locations: new Map(), maxInstanceId: undefined };
      this.groups.set(groupIndex, index);
    }
    index.locations.set(instanceId, segment.sequence * TWO_32 + offset);
    if (index.maxInstanceId === undefined || instanceId > index.maxInstanceId) index.maxInstanceId = instanceId;
  }

  /** The active segment, rolled over to a fresh one when `bytes` do not fit. */
  private async activeSegmentWithRoom(bytes: number): Promise<Segment> {
    const active = this.active;
    if (active !== null && active.writeOffset + bytes <= active.capacity) return active;
    // Seal the old segment durably before a later one gets data: recovery takes damage anywhere but
    // in the last segment with data for corruption, so an unsynced tail left behind would make a
    // power cut look like corruption (and a later synced write would not cover it).
    if (active !== null && this.activeUnsynced && this.options.faults?.skipDatasync !== true) {
      await (await this.handleOf(active)).datasync();
    }
    this.activeUnsynced = false;
    const pending = this.nextSegment;
    this.nextSegment = null;
    this.nextSequenceReserved = null;
    let next = pending === null ? null : await pending;
    if (next === null || next.capacity < bytes) {
      // A batch larger than a segment gets one of its own size; a spare too small for it stays
      // behind empty (later sequence numbers must hold later writes) and is unlinked as dead.
      next = await this.makeSegment(this.nextSequence(), Math.max(bytes, this.options.segmentBytes));
    }
    this.active = next;
    this.options.logger.info('log segment rolled', { segment: next.path });
    this.prepareNextSegment();
    return next;
  }

  private prepareNextSegment(): void {
    if (this.options.readOnly || this.nextSegment !== null) return;
    const sequence = this.nextSequence();
    const pending = this.makeSegment(sequence, this.options.segmentBytes);
    pending.catch(() => undefined);
    this.nextSegment = pending;
    this.nextSequenceReserved = sequence;
  }

  private nextSequence(): number {
    let highest = 0;
    for (const sequence of this.segments.keys()) highest = Math.max(highest, sequence);
    return highest + 1;
  }

  private async makeSegment(sequence: number, capacity: number): Promise<Segment> {
    const segment: Segment = {
      sequence, path: join(this.logDirectory, segmentName(sequence)), handle: null, opening: null, unlinked: false,
      capacity,
      writeOffset: 0,
      highest: new Map(),
    };
    this.segments.set(sequence, segment);
    try {
      await createSegment(this.fs, this.logDirectory, sequence, capacity);
    } catch (error) {
      this.segments.delete(sequence);
      throw error;
    }
    return segment;
  }

  private async handleOf(segment: Segment): Promise<FileHandle> {
    // Never reopened once cleaning took it out: the descriptor would outlive the segment.
    if (segment.unlinked) throw new Error(`${segment.path} was deleted by log cleaning`);
    if (segment.handle !== null) return segment.handle;
    segment.opening ??= this.fs.open(segment.path, this.options.readOnly).then((handle) => {
      segment.handle = handle;
      segment.opening = null;
      return handle;
    }, (error: unknown) => {
      segment.opening = null;
      throw error;
    });
    return segment.opening;
  }

  /** Unlink sealed segments whose every record is below its group's low-water mark or cleared. */
  private async unlinkDeadSegments(): Promise<void> {
    if (this.options.readOnly) return;
    this.unlinking++;
    try {
      await this.unlinkDead();
    } finally {
      this.unlinking--;
    }
  }

  private async unlinkDead(): Promise<void> {
    // Only segments before the active one are sealed: any later one is a spare, possibly still being
    // created or awaited by a roll. The dead ones leave the map before the first await, so a concurrent
    // call (another group's deleteBelow) does not unlink them a second time.
    const activeSequence = this.active?.sequence ?? 0;
    const dead = [...this.segments.values()]
      .filter((segment) => segment.sequence < activeSequence && this.isDead(segment));
    for (const segment of dead) {
      segment.unlinked = true;
      this.segments.delete(segment.sequence);
    }
    for (const segment of dead) {
      // A read may be opening it: its descriptor would outlive the segment (and keep its space).
      await segment.opening?.catch(() => undefined);
      segment.opening = null;
      await segment.handle?.close();
      segment.handle = null;
      await this.fs.unlink(segment.path);
    }
    if (dead.length > 0) await this.fs.syncDirectory(this.logDirectory);
  }

  /** Dead by the *durable* metadata: a change still in memory could be undone by a crash. */
  private isDead(segment: Segment): boolean {
    if (segment.highest.size === 0) return true;
    for (const [groupIndex, byEpoch] of segment.highest) {
      const meta = this.durableMeta.get(groupIndex) ?? emptyGroupMeta();
      for (const [epoch, highest] of byEpoch) {
        if (epoch === meta.epoch && highest >= meta.minChosenInstanceId) return false;
      }
    }
    return true;
  }

  /**
   * Change a group's metadata and write it durably. `holdsPuts` (the default) makes puts issued
   * meanwhile wait for it; a low-water-mark raise does not need that (records written after it are
   * above the mark either way), and must not stall proposals while it is written.
   */
  private updateMeta(
    groupIndex: number, change: (meta: GroupMeta) => void, { holdsPuts = true }: { holdsPuts?: boolean } = {},
  ): Promise<void> {
    const refusal = this.writeRefusal();
    if (refusal !== null) return Promise.reject(refusal);
    change(this.groupMeta(groupIndex));
    this.metaWritesInFlight++;
    if (holdsPuts) this.putHoldingMetaWrites++;
    const write = this.metaWrites.then(async () => {
      const snapshot = copyMeta(this.meta);
      try {
        if (this.failure !== null) throw this.failure;
        await writeMeta(this.fs, this.options.directory, snapshot);
      } catch (error) {
        // Like a failed log write, a failed metadata write halts the store; and the store forgets
        // the changes it could not persist rather than report them.
        this.meta = copyMeta(this.durableMeta);
        if (this.failure === null) {
          this.fail(storageError('metadata write', this.options.directory, error));
          this.options.logger.error('metadata write failed; the store refuses further writes', { error: String(error) });
        }
        throw this.failure;
      }
      this.durableMeta = snapshot;
    });
    this.metaWrites = write.catch(() => undefined).finally(() => {
      this.metaWritesInFlight--;
      if (holdsPuts) this.putHoldingMetaWrites--;
      this.releaseDeferred();
    });
    return write;
  }

  private groupMeta(groupIndex: number): GroupMeta {
    let meta = this.meta.get(groupIndex);
    if (meta === undefined) {
      meta = emptyGroupMeta();
      this.meta.set(groupIndex, meta);
    }
    return meta;
  }

  private writeRefusal(): Error | null {
    if (this.closed) return new PaxosError('STOPPED', 'the log store is closed');
    if (this.options.readOnly) return new PaxosError('BAD_OPTIONS', 'the log store was opened read-only');
    return this.failure;
  }

  private assertOpen(): void {
    if (this.closed) throw new PaxosError('STOPPED', 'the log store is closed');
  }

  /** Start-up: read the metadata, scan every segment in order, rebuild the index, repair a torn tail. */
  private async recover(): Promise<void> {
    const { directory, readOnly } = this.options;
    if (!readOnly) {
      await this.fs.mkdir(this.logDirectory);
      await this.fs.syncDirectory(directory);
    } else if (!(await this.fs.exists(this.logDirectory))) {
      throw new PaxosError('BAD_OPTIONS', `${directory} holds no log (no ${this.logDirectory})`, NOT_CHOSEN);
    }
    this.meta = await readMeta(this.fs, directory);
    this.durableMeta = copyMeta(this.meta);
    const sequences = await listSegments(this.fs, this.logDirectory);
    // What is listed is made durable before anything is written into it: a segment renamed into
    // place whose directory fsync failed (a full or failing disk) would otherwise be trusted, filled
    // with acknowledged records, and lost at a power cut together with its name.
    if (!readOnly) await this.fs.syncDirectory(this.logDirectory);
    let records = 0;
    let truncatedTail: RecoveryReport['truncatedTail'] = null;
    // One segment at a time, indexing as we go, so only one segment's bytes are ever held.
    const scans = [];
    let highestWrite = -1;
    for (const sequence of sequences) {
      const path = join(this.logDirectory, segmentName(sequence));
      const scan = scanSegment(await this.fs.readFile(path), highestWrite, false);
      highestWrite = scan.highestWrite;
      const segment: Segment = {
        sequence, path, handle: null, opening: null, unlinked: false, capacity: scan.fileBytes,
        writeOffset: scan.dataEnd,
        highest: new Map(),
      };
      this.segments.set(sequence, segment);
      for (const [i, stored] of scan.records.entries()) {
        this.index(stored.groupIndex, stored.epoch, stored.record.instanceId, segment, scan.offsets[i] as number);
      }
      records += scan.records.length;
      scans.push({ path, segment, tail: scan.tail, hasData: scan.dataEnd > 0 || scan.tail !== null });
    }
    this.nextWrite = highestWrite + 1;
    const lastWithData = scans.findLastIndex((scan) => scan.hasData);
    for (const [position, { path, segment, tail }] of scans.entries()) {
      if (tail === null) continue;
      if (tail.kind === 'corrupt' || position !== lastWithData) {
        const detail = tail.kind === 'torn' ? 'valid data follows in later segments' : tail.detail;
        throw new PaxosError('STORAGE_CORRUPT', `${path}: ${tail.reason} at offset ${tail.offset}` +
          (detail === undefined ? '' : ` (${detail})`), NOT_CHOSEN);
      }
      // The remains of the write in flight at a crash (never acknowledged): cut them, and zero them
      // so that a later life appending here can never run into them.
      truncatedTail = { file: path, offset: tail.offset, reason: tail.reason };
      this.options.logger.warn('truncating a torn tail left by an interrupted write', truncatedTail);
      if (!readOnly) await this.zero(segment, tail.offset, tail.dirtyEnd);
    }
    this.recovery = { segments: sequences.length, records, truncatedTail };
    if (readOnly) return;
    // What was just indexed may still sit in the page cache (the previous process died between a
    // write and its flush): make it durable before anything new is written after it, or a power cut
    // could keep the new write and lose the old, which start-up could then not tell from corruption.
    // (Descriptors are closed again: nothing is held open for writing until the first write.)
    for (const { segment } of scans) {
      if (segment.writeOffset === 0 || !this.syncEnabled) continue;
      const handle = await this.handleOf(segment);
      await handle.datasync();
      await handle.close();
      segment.handle = null;
    }
    // Resume appending in the last segment with data (right after a truncated tail); an empty segment
    // after it (the spare pre-allocated by the previous life) stays the spare, so a restart neither
    // abandons the rest of a segment nor adds one.
    const resumeAt = Math.max(lastWithData, 0);
    const segmentAt = (position: number): Segment | undefined => {
      const sequence = sequences[position];
      return sequence === undefined ? undefined : this.segments.get(sequence);
    };
    const resume = segmentAt(resumeAt);
    const spare = segmentAt(resumeAt + 1);
    this.active = resume ?? await this.makeSegment(1, this.options.segmentBytes);
    // Without sync the datasync above was skipped: the segment's data may still be in the page
    // cache, and an O_DSYNC write after setSync(true) would not cover it (write + fdatasync does).
    this.activeUnsynced = !this.syncEnabled && this.active.writeOffset > 0;
    if (spare !== undefined) {
      this.nextSegment = Promise.resolve(spare);
      this.nextSequenceReserved = spare.sequence;
    }
    this.prepareNextSegment();
  }

  private async zero(segment: Segment, from: number, to: number): Promise<void> {
    if (to <= from) return;
    const handle = await this.handleOf(segment);
    await handle.write(Buffer.alloc(to - from), from);
    await handle.datasync();
  }
}

/** The failure of a write: the store refuses writes until `resume` succeeds. */
function storageError(operation: string, where: string, error: unknown): PaxosError {
  const cause = error instanceof PaxosError && error.cause !== undefined ? error.cause : error;
  return new PaxosError('STORAGE_UNAVAILABLE', `${operation} failed in ${where}: ${describe(cause)}`, { cause });
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The errno code of a failed file operation (ENOSPC, EIO, EROFS...), if it has one. */
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? code : undefined;
}

/** An operating system's refusal to write (as opposed to damage found in the files, or a bug). */
function isWriteError(error: unknown): boolean {
  return errorCode(error) !== undefined;
}

/** Variables are replaced whole, never changed in place, so copying each group's fields suffices. */
function copyMeta(meta: ReadonlyMap<number, GroupMeta>): Map<number, GroupMeta> {
  return new Map([...meta].map(([groupIndex, group]) => [groupIndex, { ...group }]));
}

/** Bytes a record occupies in the log, for sizing segments and benchmarks. */
export function recordBytesOnDisk(valueBytes: number): number {
  return FRAME_HEADER_BYTES + RECORD_FIXED_BYTES + valueBytes;
}

/**
 * How many of `instanceIds`, from the first, to read so that what is read stays near `maxBytes`:
 * the records before the last one read span at most `maxBytes` of their segment, so only the last
 * one's own size is unknown until it is read (a teacher's budget is then passed by one value at
 * most). A record's size is taken as the distance to the next one's, which also counts what lies
 * between (other groups' records): that much is read too, since a run is read in one piece. Across
 * a segment boundary the size is unknown without a read: the part ends there. At least one.
 */
function readableWithin(
  locations: ReadonlyMap<number, number> | undefined, instanceIds: readonly number[], maxBytes: number,
): number {
  if (maxBytes === Infinity || locations === undefined) return instanceIds.length;
  let bytes = 0;
  let previous = locations.get(instanceIds[0] as number);
  for (let count = 1; count < instanceIds.length; count++) {
    const location = locations.get(instanceIds[count] as number);
    if (previous !== undefined) {
      if (location === undefined || Math.floor(location / TWO_32) !== Math.floor(previous / TWO_32) ||
        location <= previous) {
        return count;
      }
      bytes += location - previous;
      if (bytes >= maxBytes) return count;
    }
    previous = location;
  }
  return instanceIds.length;
}
