/**
 * Log cleaning (PhxPaxos Cleaner): deletes the log records a group no longer needs, behind the
 * checkpoints its state machines keep durably, less a hold.
 *
 * Safety: a record is deleted only when every user state machine of the group reports a durable
 * checkpoint at or above it plus `holdInstances`, so start-up (which replays from the lowest
 * checkpoint + 1) never needs a deleted record. System state machines (master, membership) keep their
 * state in the store's variables and do not count. Nothing is cleaned while a checkpoint install is
 * under way (the store's pending-checkpoint marker), and the newest chosen record (current instance
 * − 1) always stays: start-up reads the acceptor's promise and the checksum chain from it.
 *
 * Pacing: the node's one timer ticks the cleaner like a group; a pass cleans one group, at most
 * `maxInstancesPerPass` instances, and runs off the hot path (the store's delete is asynchronous and
 * does not hold puts back). A group with more to clean is visited again soon rather than in one
 * long pass.
 */
import type { Clock, LogStore, Logger, StateMachine } from './interfaces.js';

export interface LogCleaningSettings {
  /** Instances kept below the lowest checkpoint (PhxPaxos SetHoldPaxosLogCount). */
  readonly holdInstances: number;
  /** Time between passes; each pass cleans one group. 0 turns cleaning off. */
  readonly intervalMs: number;
  /** At most this many instances are deleted in one pass. */
  readonly maxInstancesPerPass: number;
}

/** What the cleaner needs of one group. */
export interface CleanableGroup {
  readonly groupIndex: number;
  /** The instance being decided: everything below it is chosen and executed here. */
  nowInstanceId(): number;
  /** The lowest instance still held. */
  minChosenInstanceId(): number;
  /** The user's state machines (system ones excluded), as registered now. */
  userStateMachines(): readonly StateMachine[];
  /** A halted group is left alone. */
  halted(): boolean;
  /** The records below `instanceId` are durably gone: tell the core's teacher. */
  setMinChosenInstanceId(instanceId: number): void;
  /** Optional: the lowest instance to keep for a peer this node sent a checkpoint to. */
  keepLogFrom?(): number | undefined;
}

export interface CleanBoundInput {
  /** Each user state machine's checkpoint (undefined: it keeps none). */
  readonly checkpoints: readonly (number | undefined)[];
  readonly holdInstances: number;
  readonly nowInstanceId: number;
  readonly minChosenInstanceId: number;
  /** A checkpoint install is under way. */
  readonly installPending: boolean;
}

/**
 * The instance below which the group's records may be deleted, or undefined when nothing may go.
 * min(checkpoints) + 1 − hold, never above the current instance − 1 nor below what is already clean.
 */
export function cleanBound(input: CleanBoundInput): number | undefined {
  if (input.installPending || input.checkpoints.length === 0) return undefined;
  let lowest = Infinity;
  for (const checkpoint of input.checkpoints) {
    // No checkpoint (or -1, nothing durable): every value may still be replayed; keep the log whole.
    if (checkpoint === undefined || !Number.isSafeInteger(checkpoint) || checkpoint < 0) return undefined;
    lowest = Math.min(lowest, checkpoint);
  }
  // Keep the current instance's predecessor: start-up resumes from the newest record.
  const bound = Math.min(lowest + 1 - input.holdInstances, input.nowInstanceId - 1);
  return bound > input.minChosenInstanceId ? bound : undefined;
}

export interface LogCleanerOptions {
  readonly store: LogStore;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly settings: LogCleaningSettings;
  readonly groups: readonly CleanableGroup[];
  /** The next pass moved: the node re-arms its timer. */
  readonly onTimersChanged: () => void;
}

/** When a pass left work behind, the next one follows this soon (the timer still yields in between). */
const BACKLOG_DELAY_MS = 10;

export class LogCleaner {
  private readonly options: LogCleanerOptions;
  private readonly cleaned: number[];
  private nextPassAt: number;
  private cursor = 0;
  private running = false;
  private stopped = false;
  private idle: Promise<void> = Promise.resolve();
  /**
   * The groups that can ever be cleaned: every user state machine keeps a checkpoint. Fixed at start
   * (a state machine added later cannot keep one), so a node with none never arms a cleaning timer.
   */
  private readonly groups: readonly CleanableGroup[];

  constructor(options: LogCleanerOptions) {
    this.options = options;
    this.groups = options.groups.filter((group) => {
      const machines = group.userStateMachines();
      return machines.length > 0 && machines.every((machine) => machine.checkpointInstanceId !== undefined);
    });
    this.cleaned = options.groups.map(() => 0);
    this.nextPassAt = options.clock.now() + options.settings.intervalMs;
  }

  /** Instances deleted from each group's log by this node since start. */
  instancesCleaned(groupIndex: number): number {
    return this.cleaned[groupIndex] ?? 0;
  }

  /** For the node's timer: when the next pass is due (undefined: off, or a pass is running). */
  nextTimerAt(): number | undefined {
    if (this.stopped || this.running || this.options.settings.intervalMs === 0 || this.groups.length === 0) {
      return undefined;
    }
    return this.nextPassAt;
  }

  tick(): void {
    const at = this.nextTimerAt();
    if (at === undefined || this.options.clock.now() < at) return;
    const group = this.groups[this.cursor] as CleanableGroup;
    this.cursor = (this.cursor + 1) % this.groups.length;
    this.running = true;
    this.idle = this.pass(group).then((backlog) => {
      this.running = false;
      this.nextPassAt = this.options.clock.now() + (backlog ? BACKLOG_DELAY_MS : this.options.settings.intervalMs);
      this.options.onTimersChanged();
    });
  }

  /** No pass starts after this; resolves once the one under way (if any) is done. */
  stop(): Promise<void> {
    this.stopped = true;
    return this.idle;
  }

  /** Clean one group; true when it has more to clean than one pass may do. */
  async pass(group: CleanableGroup): Promise<boolean> {
    const { store, settings, logger } = this.options;
    try {
      if (group.halted()) return false;
      const bound = cleanBound({
        checkpoints: group.userStateMachines().map((machine) => machine.checkpointInstanceId?.(group.groupIndex)),
        holdInstances: settings.holdInstances,
        nowInstanceId: group.nowInstanceId(),
        minChosenInstanceId: group.minChosenInstanceId(),
        installPending: await store.pendingCheckpoint(group.groupIndex) !== undefined,
      });
      if (bound === undefined || this.stopped) return false;
      const from = group.minChosenInstanceId();
      // A peer this node is sending a checkpoint to will learn from the log after it.
      const limit = Math.min(bound, group.keepLogFrom?.() ?? Infinity);
      if (limit <= from) return false;
      const to = Math.min(limit, from + settings.maxInstancesPerPass);
      // The store persists the new low-water mark before any record goes; only then may the teacher
      // stop offering what lies below it.
      await store.deleteBelow(group.groupIndex, to);
      group.setMinChosenInstanceId(to);
      this.cleaned[group.groupIndex] = (this.cleaned[group.groupIndex] ?? 0) + (to - from);
      return to < limit;
    } catch (error) {
      // A failed delete loses nothing (the records stay); a store that failed halts its groups itself.
      logger.warn('log cleaning failed; tried again at the next pass', { group: group.groupIndex, error: String(error) });
      return false;
    }
  }
}
