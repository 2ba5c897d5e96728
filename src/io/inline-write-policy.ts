/**
 * When FileLogStore may make a durable write on the event loop's own thread (see
 * docs/transport-and-storage.md). Inline saves the round trip to libuv's thread pool and back, a
 * fixed few tens of µs on a quiet machine (more when the CPUs are loaded), but the loop does
 * nothing else while the disk works. That trade pays only while the disk is fast: a write that takes
 * a millisecond blocks the loop for twenty times what it saves. So writes of up to `maxBytes` go
 * inline while a moving average of their times stays within `slowMs`; above it, they go to the
 * thread pool for `pauseMs`, then one inline write probes the disk again. The guard reacts after
 * slow writes (the first slow ones did block the loop), and each probe blocks it for one write.
 */

export interface InlineWritePolicyOptions {
  /** Largest write made inline; 0 turns inline writes off. */
  readonly maxBytes: number;
  /** Inline writes slower than this on average send writes to the thread pool for a while. */
  readonly slowMs: number;
  /** How long they stay on the thread pool before a probe. */
  readonly pauseMs: number;
  /** A monotonic clock in ms (performance.now on a real node). */
  readonly now: () => number;
  /** Told each time inline writes pause, with the average that paused them. */
  readonly onPause?: (averageMs: number) => void;
}

/** The defaults of FileLogStore (see FileLogStoreOptions). */
export const DEFAULT_INLINE_WRITE_BYTES = 64 * 1024;
/**
 * 1 ms: a 200-byte O_DSYNC write on this project's machine took 0.11–0.17 ms (p10–p50) inline and
 * through the pool alike, so what inline saves is tens of µs; at 1 ms a write already blocks the loop
 * for far more than that, and the work the loop could overlap with the disk wins.
 */
export const DEFAULT_SLOW_INLINE_WRITE_MS = 1;
export const INLINE_WRITE_PAUSE_MS = 1000;

/** Weight of the newest write in the moving average: a few slow writes in a row are enough to pause. */
const NEWEST_WEIGHT = 0.2;

export class InlineWritePolicy {
  private readonly options: InlineWritePolicyOptions;
  private averageMs = 0;
  /** Until when inline writes are paused (0: they are not). */
  private pausedUntil = 0;

  constructor(options: InlineWritePolicyOptions) {
    this.options = options;
  }

  /** Whether a durable write of `bytes` may be made inline now. */
  allows(bytes: number): boolean {
    if (bytes > this.options.maxBytes) return false;
    if (this.pausedUntil === 0) return true;
    if (this.options.now() < this.pausedUntil) return false;
    // The probe: the average starts at the threshold, so one write as slow as it pauses again at once.
    this.pausedUntil = 0;
    this.averageMs = this.options.slowMs;
    return true;
  }

  /** An inline write took `ms`. */
  noteWrite(ms: number): void {
    this.averageMs = (1 - NEWEST_WEIGHT) * this.averageMs + NEWEST_WEIGHT * ms;
    if (this.averageMs <= this.options.slowMs) return;
    this.pausedUntil = this.options.now() + this.options.pauseMs;
    this.options.onPause?.(this.averageMs);
  }
}
