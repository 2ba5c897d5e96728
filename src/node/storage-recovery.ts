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
 *
 * Only the storage is waited for, and a state machine that throws while the log is replayed (as
 * an execution that fails is retried while the node runs: with a backoff up to 8 s). A group whose
 * rebuild fails for another reason (its log behind its state machines' checkpoint) would fail the
 * same way at every attempt: it halts for good (GROUP_HALTED, until the node restarts) and the others go on. A
 * store found damaged when it resumes (STORAGE_CORRUPT) is not retried either: the node stops
 * trying and says so; a restart names the damage and refuses to start on it.
 */
import type { HaltReason } from '../core/ready.js';
import { hasErrorCode, PaxosError } from '../errors.js';
import type { Clock, LogStore, Logger } from '../runtime/interfaces.js';
import { isReplayExecutionFailure } from '../runtime/restore.js';
import type { TimedGroup } from './node-timer.js';
import type { GroupRuntime } from './group-runtime.js';

export const FIRST_RESUME_DELAY_MS = 500;
export const MAX_RESUME_DELAY_MS = 8_000;

/**
 * Why the node's storage refuses writes: `reason` is the error code (ENOSPC, EIO, EROFS...), or
 * STORAGE_CORRUPT when the store found damage on disk as it resumed (it then never resumes).
 */
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
  /** Halt a group for good (GROUP_HALTED): its rebuild failed for a reason other than the storage. */
  readonly haltForGood: (groupIndex: number, error: unknown) => void;
  readonly onTimersChanged: () => void;
}

export class StorageRecovery implements TimedGroup {
  private readonly options: StorageRecoveryOptions;
  private current: StorageFailure | undefined;
  private nextAttemptAt: number | undefined;
  private delayMs = FIRST_RESUME_DELAY_MS;
  /**
   * The backoff for a state machine that keeps failing a rebuild's replay: its own, so that other
   * groups (one waiting for an install, say) are still looked at every FIRST_RESUME_DELAY_MS.
   */
  private replayDelayMs = FIRST_RESUME_DELAY_MS;
  private attempting = false;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  /** The store was found damaged: no more attempts. */
  private gaveUp = false;
  /** Times the node took writes again after its storage failed. */
  resumes = 0;
  /** The reason of the last failure, kept once it is over (metrics keep one label set). */
  lastReason: string | undefined;

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

  private setFailure(failure: StorageFailure): StorageFailure {
    this.current = failure;
    this.lastReason = failure.reason;
    return failure;
  }

  /** A group halted; a storage halt halts every other group and starts the attempts to resume. */
  onGroupHalted(reason: HaltReason): void {
    if (reason.code !== 'STORAGE_UNAVAILABLE' || this.stopped) return;
    const { store, logger, clock } = this.options;
    const failure = store.storageFailure?.();
    if (failure === undefined && store.resume !== undefined && store.storageFailure !== undefined) {
      // A late halt: the group's write was refused before the store resumed, which it has since.
      // Nothing else halts and no new failure is reported; the group is rebuilt soon.
      this.nextAttemptAt = Math.min(this.nextAttemptAt ?? Infinity, clock.now() + FIRST_RESUME_DELAY_MS);
      this.options.onTimersChanged();
      return;
    }
    if (this.current === undefined) {
      const current = this.setFailure(failure ?? { reason: 'EIO', message: reason.message });
      logger.error('the node cannot write to its storage: every group stops writing until it can', {
        reason: current.reason, message: current.message,
      });
      // Set even while an attempt is under way (it may have just cleared the previous failure):
      // the timer asks again once the attempt is over.
      if (store.resume !== undefined && !this.gaveUp) {
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
    return this.stopped || this.attempting || this.gaveUp ? undefined : this.nextAttemptAt;
  }

  tick(): void {
    if (this.stopped || this.attempting || this.gaveUp || this.nextAttemptAt === undefined) return;
    if (this.options.clock.now() < this.nextAttemptAt) return;
    this.nextAttemptAt = undefined;
    this.attempting = true;
    this.running = this.attempt().catch(() => undefined).finally(() => {
      this.attempting = false;
      this.options.onTimersChanged();
    });
  }

  private async attempt(): Promise<void> {
    const { store, logger } = this.options;
    try {
      await store.resume?.();
    } catch (error) {
      if (this.stopped) return;
      if (hasErrorCode(error, 'STORAGE_CORRUPT')) {
        this.giveUp(error);
        return;
      }
      this.retryLater(error);
      return;
    }
    if (this.stopped) return;
    if (this.current !== undefined) {
      // The store takes writes: the node no longer says it cannot write, whatever its groups do.
      logger.warn('storage takes writes again; the halted groups are rebuilt', { reason: this.current.reason });
      this.current = undefined;
      this.resumes++;
    }
    // Every group halted for storage comes back, including one that halted while the store was
    // resuming (its write was refused before the store took writes again).
    let replayFailed = false;
    for (const runtime of this.options.groups()) {
      if (this.stopped) return;
      if (runtime.driver.halted?.code !== 'STORAGE_UNAVAILABLE' || this.options.busy(runtime.groupIndex)) continue;
      try {
        await this.options.rebuild(runtime.groupIndex);
      } catch (error) {
        if (this.stopped || (error instanceof PaxosError && error.code === 'STOPPED')) return;
        if (hasErrorCode(error, 'STORAGE_UNAVAILABLE') || store.storageFailure?.() !== undefined) {
          this.retryLater(error);
          return;
        }
        if (isReplayExecutionFailure(error)) {
          // A state machine threw while the log was replayed, as it may while the node runs (where
          // the execution is retried): the group stays halted for storage and is rebuilt again soon.
          const retryInMs = Math.min(this.replayDelayMs * 2, MAX_RESUME_DELAY_MS);
          logger.warn('a state machine failed while the group was rebuilt after its storage resumed; trying again',
            { group: runtime.groupIndex, error: String(error), retryInMs });
          replayFailed = true;
          continue;
        }
        logger.error('a group could not be rebuilt after its storage resumed, for another reason than the ' +
          'storage; it stays halted until the node restarts', { group: runtime.groupIndex, error: String(error) });
        this.options.haltForGood(runtime.groupIndex, error);
      }
    }
    if (this.stopped) return;
    const stillHalted = this.options.groups().some((runtime) =>
      runtime.driver.halted?.code === 'STORAGE_UNAVAILABLE');
    if (stillHalted) {
      // A group busy with an install, or one that failed again at once: look again soon. A state
      // machine that keeps failing its replay is retried for as long as it fails, as an execution
      // is while the node runs, but backing off up to MAX_RESUME_DELAY_MS (and its warning with it).
      this.replayDelayMs = replayFailed ? Math.min(this.replayDelayMs * 2, MAX_RESUME_DELAY_MS) : FIRST_RESUME_DELAY_MS;
      this.nextAttemptAt = this.options.clock.now() + (replayFailed ? this.replayDelayMs : this.delayMs);
      return;
    }
    this.delayMs = FIRST_RESUME_DELAY_MS;
    this.replayDelayMs = FIRST_RESUME_DELAY_MS;
  }

  /** The storage still refuses writes (or refused one again): back off and try again. */
  private retryLater(error: unknown): void {
    const { store, logger, clock } = this.options;
    const current = this.setFailure(store.storageFailure?.() ?? this.current ??
      { reason: 'EIO', message: error instanceof Error ? error.message : String(error) });
    this.delayMs = Math.min(this.delayMs * 2, MAX_RESUME_DELAY_MS);
    this.nextAttemptAt = clock.now() + this.delayMs;
    logger.warn('storage still refuses writes; trying again later', {
      reason: current.reason, error: String(error), retryInMs: this.delayMs,
    });
  }

  /** The store found damage on disk as it resumed: retrying cannot help, and nothing resumes. */
  private giveUp(error: unknown): void {
    this.gaveUp = true;
    this.nextAttemptAt = undefined;
    this.setFailure({ reason: 'STORAGE_CORRUPT', message: error instanceof Error ? error.message : String(error) });
    this.options.logger.error('the store found its files damaged as it resumed; every group stays halted until ' +
      'the node restarts (which names the damage and refuses to start on it until it is repaired)', {
      error: String(error),
    });
    for (const runtime of this.options.groups()) {
      if (runtime.driver.halted?.code === 'STORAGE_UNAVAILABLE') this.options.haltForGood(runtime.groupIndex, error);
    }
  }
}
