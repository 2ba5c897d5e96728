/**
 * The one timer of a node (DESIGN §10: one timer per node, not per request). Every group reports
 * when its earliest deadline may have changed; once per turn the node re-arms a single setTimeout
 * for the earliest deadline of all groups, and when it fires every group is ticked.
 */
import type { Clock } from '../runtime/interfaces.js';

export interface TimedGroup {
  nextTimerAt(): number | undefined;
  tick(): void;
}

export class NodeTimer {
  private readonly clock: Clock;
  private readonly groups: () => readonly TimedGroup[];
  private timer: NodeJS.Timeout | null = null;
  private armedAt: number | null = null;
  private recomputeQueued = false;
  private stopped = false;

  constructor(clock: Clock, groups: () => readonly TimedGroup[]) {
    this.clock = clock;
    this.groups = groups;
  }

  /** Some group's deadlines changed: re-arm at the end of this turn (once, however many call). */
  changed(): void {
    if (this.recomputeQueued || this.stopped) return;
    this.recomputeQueued = true;
    queueMicrotask(() => {
      this.recomputeQueued = false;
      this.arm();
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.armedAt = null;
  }

  private arm(): void {
    if (this.stopped) return;
    let earliest: number | undefined;
    for (const group of this.groups()) {
      const at = group.nextTimerAt();
      if (at !== undefined && (earliest === undefined || at < earliest)) earliest = at;
    }
    if (earliest === undefined) return;
    if (this.armedAt !== null && this.armedAt <= earliest) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.armedAt = earliest;
    const delay = Math.max(0, Math.ceil(earliest - this.clock.now()));
    this.timer = setTimeout(() => this.fire(), delay);
  }

  private fire(): void {
    this.timer = null;
    this.armedAt = null;
    if (this.stopped) return;
    for (const group of this.groups()) group.tick();
    this.arm();
  }
}
