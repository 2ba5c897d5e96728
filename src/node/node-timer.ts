/**
 * The one timer of a node (one timer per node, not per request). Every group reports
 * when its earliest deadline may have changed; once per turn the node re-arms a single timer on
 * its TimerHost for the earliest deadline of all groups, and when it fires every group is ticked.
 * The re-arm waits for the end of the turn (a microtask) so that many changes cost one computation;
 * microtasks run in a fixed order, so this stays deterministic under simulation.
 */
import type { TimerHost } from '../runtime/interfaces.js';

export interface TimedGroup {
  nextTimerAt(): number | undefined;
  tick(): void;
}

export class NodeTimer {
  private readonly host: TimerHost;
  private readonly groups: () => readonly TimedGroup[];
  private cancel: (() => void) | null = null;
  private armedAt: number | null = null;
  private recomputeQueued = false;
  private stopped = false;

  constructor(host: TimerHost, groups: () => readonly TimedGroup[]) {
    this.host = host;
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
    this.cancel?.();
    this.cancel = null;
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
    this.cancel?.();
    this.armedAt = earliest;
    this.cancel = this.host.setTimer(earliest, () => this.fire());
  }

  private fire(): void {
    this.cancel = null;
    this.armedAt = null;
    if (this.stopped) return;
    for (const group of this.groups()) group.tick();
    this.arm();
  }
}
