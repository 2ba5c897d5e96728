/**
 * The production TimerHost: setTimeout, with the delay measured on the node's clock.
 */
import type { Clock, TimerHost } from '../runtime/interfaces.js';

/** setTimeout's limit; a later deadline is reached by waking early and re-arming. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export function timeoutTimerHost(clock: Clock): TimerHost {
  return {
    setTimer(atMs, run) {
      const delay = Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(atMs - clock.now())));
      const timer = setTimeout(run, delay);
      return () => clearTimeout(timer);
    },
  };
}
