/**
 * The TimerHost of one simulated process life: a timer becomes an event on the scheduler at the
 * true time the node's clock reaches the deadline, and runs through the life's gate (dropped after
 * a crash, held while paused).
 */
import type { TimerHost } from '../../runtime/interfaces.js';
import type { SimScheduler } from './scheduler.js';
import type { SimClock } from './sim-clock.js';
import type { ProcessGate } from './sim-device.js';

/** Past the exact conversion, so that the local clock has surely reached the deadline when it fires. */
const ROUNDING_MARGIN_MS = 1e-6;

export function simTimerHost(scheduler: SimScheduler, clock: SimClock, gate: ProcessGate): TimerHost {
  return {
    setTimer(atMs, run) {
      let cancelled = false;
      scheduler.at(Math.max(clock.trueTimeOf(atMs), scheduler.now) + ROUNDING_MARGIN_MS, () => {
        // Checked again inside the gate: a timer held while the node is paused may be cancelled
        // before the node resumes, and must not fire then.
        if (!cancelled) gate(() => { if (!cancelled) run(); });
      });
      return () => {
        cancelled = true;
      };
    },
  };
}
