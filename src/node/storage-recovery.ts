/**
 * A node whose disk stops taking writes (full, read-only, failing) stops writing cleanly and comes
 * back by itself once it can write again, without a restart.
 *
 * The groups share one store. When a write of one group fails, the store refuses every later
 * write (STORAGE_UNAVAILABLE) and that group halts; the others are halted here at once with the
 * same reason, so that every group says so (rather than each finding out at its next write, or a
 * master keeping its role on a lease it cannot renew). Halted groups send and vote nothing.
 *
 * Riding the node's timer (so the simulator drives it like the rest), it then asks the store to
 * resume, with a backoff (0.5 s doubling to 8 s). A store that resumes has rebuilt itself from what
 * is on disk (see FileLogStore.resume); every halted group is then rebuilt from the store, as a
 * checkpoint install does it: a fresh runtime with a new incarnation, its state machines kept,
 * replay above what they executed. Its in-memory protocol state from before the failure (a promise
 * it could not persist, say) is dropped, so nothing is acknowledged that did not reach the disk.
 * A store that cannot resume (no `resume`, a custom store) leaves its groups halted as before.
 */
import type { HaltReason } from '../core/ready.js';
import type { Clock, LogStore, Logger } from '../runtime/interfaces.js';
import type { TimedGroup } from './node-timer.js';
import type { GroupRuntime } from './group-runtime.js';

export const FIRST_RESUME_DELAY_MS = 500;
export const MAX_RESUME_DELAY_MS = 8_000;

/** Why the node's storage refuses writes: `reason` is the error code (ENOSPC, EIO, EROFS...). */
export interface StorageFailure {
  readonly reason: string;
  readonly message: string;
}

/** The optional parts of a LogStore that can report a write failure and resume after it. */
export interface ResumableStore {
  storageFailure?(): StorageFailure | undefined;
  resume?(): Promise<void>;
  onFailure?(listener: () => void): void;
}

export interface StorageRecoveryOptions {
  readonly store: LogStore & ResumableStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly groups: () => readonly GroupRuntime[];
  /** Replace a halted group's runtime with one built afresh from the store. */
  readonly rebuild: (groupIndex: number) => Promise<void>;
  /** Whether a group's runtime is owned by something else right now (a checkpoint install). */
  readonly busy: (groupIndex: number) => boolean;
  readonly onTimersChanged: () => void;
}

export class StorageRecovery implements TimedGroup {
  private readonly options: StorageRecoveryOptions;
  private current: StorageFailure | undefined;
  private nextAttemptAt: number | undefined;
  private delayMs = FIRST_RESUME_DELAY_MS;
  private attempting = false;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Times the node took writes again after its storage failed. */
  resumes = 0;

  constructor(options: StorageRecoveryOptions) {
    this.options = options;
    // Any write the store refused counts, not only a group's own (a checkpoint install's, say).
    options.store.onFailure?.(() => {
      const failure = options.store.storageFailure?.();
      this.onGroupHalted({ code: 'STORAGE_UNAVAILABLE', message: failure?.message ?? 'the store refuses writes' });
    });
  }

  /** Undefined while the node can write. */
  get failure(): StorageFailure | undefined {
    return this.current;
  }

  /** A group halted; a storage halt halts every other group and starts the attempts to resume. */
  onGroupHalted(reason: HaltReason): void {
    if (reason.code !== 'STORAGE_UNAVAILABLE' || this.stopped) return;
    const { store, logger, clock } = this.options;
    if (this.current === undefined) {
      this.current = store.storageFailure?.() ?? { reason: 'EIO', message: reason.message };
      logger.error('the node cannot write to its storage: every group stops writing until it can', {
        reason: this.current.reason, message: this.current.message,
      });
      // Set even while an attempt is under way (it may have just cleared the previous failure):
      // the timer asks again once the attempt is over.
      if (store.resume !== undefined) {
        this.delayMs = FIRST_RESUME_DELAY_MS;
        this.nextAttemptAt = clock.now() + this.delayMs;
      }
    }
    for (const { driver } of this.options.groups()) driver.haltForStorage(reason);
    this.options.onTimersChanged();
  }

  stop(): void {
    this.stopped = true;
    this.nextAttemptAt = undefined;
  }

  /** Resolves once no attempt is under way (one rebuilding a group must finish before the node stops). */
  async whenIdle(): Promise<void> {
    await this.running;
  }

  nextTimerAt(): number | undefined {
    return this.stopped || this.attempting ? undefined : this.nextAttemptAt;
  }

  tick(): void {
    if (this.stopped || this.attempting || this.nextAttemptAt === undefined) return;
    if (this.options.clock.now() < this.nextAttemptAt) return;
    this.nextAttemptAt = undefined;
    this.attempting = true;
    this.running = this.attempt().catch(() => undefined).finally(() => {
      this.attempting = false;
      this.options.onTimersChanged();
    });
  }

  private async attempt(): Promise<void> {
    const { store, logger, clock } = this.options;
    try {
      await store.resume?.();
      // Every group halted for storage comes back, including one that halted while the store was
      // resuming (its write was refused before the store took writes again).
      for (const runtime of this.options.groups()) {
        if (this.stopped) return;
        if (runtime.driver.halted?.code !== 'STORAGE_UNAVAILABLE' || this.options.busy(runtime.groupIndex)) continue;
        await this.options.rebuild(runtime.groupIndex);
      }
    } catch (error) {
      if (this.stopped) return;
      this.current = store.storageFailure?.() ?? this.current;
      this.delayMs = Math.min(this.delayMs * 2, MAX_RESUME_DELAY_MS);
      this.nextAttemptAt = clock.now() + this.delayMs;
      logger.warn('storage still refuses writes; trying again later', {
        reason: this.current?.reason, error: String(error), retryInMs: this.delayMs,
      });
      return;
    }
    if (this.stopped) return;
    const stillHalted = this.options.groups().some((runtime) =>
      runtime.driver.halted?.code === 'STORAGE_UNAVAILABLE');
    if (stillHalted) {
      // A group busy with an install, or one that failed again at once: look again soon.
      this.nextAttemptAt = clock.now() + this.delayMs;
      return;
    }
    logger.warn('storage takes writes again; every group resumed', { reason: this.current?.reason });
    this.current = undefined;
    this.delayMs = FIRST_RESUME_DELAY_MS;
    this.resumes++;
  }
}
