/**
 * A simulated node's clock: local time = offset + true time × rate. The clocks are linear, so a
 * local deadline converts back to true time exactly (for timers, and for the lease checker).
 */
import type { Clock } from '../../runtime/interfaces.js';
import type { SimScheduler } from './scheduler.js';

export interface SimClockSettings {
  /** Local clock = offsetMs + true time × rate. */
  readonly offsetMs: number;
  readonly rate: number;
}

export class SimClock implements Clock {
  private readonly scheduler: SimScheduler;
  private readonly settings: SimClockSettings;

  constructor(scheduler: SimScheduler, settings: SimClockSettings) {
    this.scheduler = scheduler;
    this.settings = settings;
  }

  now(): number {
    return this.settings.offsetMs + this.scheduler.now * this.settings.rate;
  }

  /** The true time at which this clock reads `localMs`. */
  trueTimeOf(localMs: number): number {
    return (localMs - this.settings.offsetMs) / this.settings.rate;
  }
}
