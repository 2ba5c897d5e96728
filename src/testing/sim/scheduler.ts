/**
 * The simulator's single source of time and order: one heap of events keyed by (true time, seq).
 * After each event the scheduler lets every promise continuation run (one macrotask turn), and no
 * simulated component schedules anything except through here, so a seed fixes the whole run.
 */
import { BinaryHeap } from '../../util/binary-heap.js';

interface SimEvent {
  readonly at: number;
  readonly seq: number;
  readonly run: () => void;
}

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export class SimScheduler {
  private readonly events = new BinaryHeap<SimEvent>((a, b) => a.at < b.at || (a.at === b.at && a.seq < b.seq));
  private seq = 0;
  private readonly observers: (() => void)[] = [];
  /** True (simulated) time in milliseconds. */
  now = 0;
  eventsRun = 0;

  at(time: number, run: () => void): void {
    this.events.push({ at: Math.max(time, this.now), seq: this.seq++, run });
  }

  after(delayMs: number, run: () => void): void {
    this.at(this.now + delayMs, run);
  }

  /**
   * Call `observe` after every event, once everything the event set off has run (and before the
   * first event): checkers that watch state rather than actions look there.
   */
  afterEach(observe: () => void): void {
    this.observers.push(observe);
  }

  get pending(): number {
    return this.events.size;
  }

  /**
   * Run events until `until` (true time) or until `stop()` says so, at most `maxEvents`.
   * Returns false when the event budget ran out (a livelock or a runaway timer).
   */
  async run(until: number, stop: () => boolean, maxEvents: number): Promise<boolean> {
    await this.settle();
    while (!stop()) {
      const next = this.events.peek();
      if (next === undefined || next.at > until) {
        this.now = Math.max(this.now, until);
        return true;
      }
      this.events.pop();
      this.now = next.at;
      next.run();
      this.eventsRun++;
      if (this.eventsRun > maxEvents) return false;
      await this.settle();
    }
    return true;
  }

  private async settle(): Promise<void> {
    await settle();
    for (const observe of this.observers) observe();
  }
}
