/**
 * Rate-limited logging for events a remote party can trigger at will (bad frames, refused
 * handshakes, failed dials). Each event key logs at most one line per interval; the lines it held
 * back are counted and reported with the next line, so nothing is hidden but nothing floods.
 */
import type { Logger } from '../runtime/interfaces.js';

export const DEFAULT_LOG_INTERVAL_MS = 10_000;

interface KeyState {
  lastAt: number;
  suppressed: number;
}

export class LogLimiter {
  private readonly logger: Logger;
  private readonly intervalMs: number;
  private readonly now: () => number;
  /** Keys are a fixed vocabulary (event, or event and peer id), so this stays small. */
  private readonly keys = new Map<string, KeyState>();

  constructor(logger: Logger, intervalMs = DEFAULT_LOG_INTERVAL_MS, now: () => number = Date.now) {
    this.logger = logger;
    this.intervalMs = intervalMs;
    this.now = now;
  }

  warn(key: string, message: string, fields: Record<string, unknown> = {}): void {
    const suppressed = this.admit(key);
    if (suppressed >= 0) this.logger.warn(message, withSuppressed(fields, suppressed));
  }

  info(key: string, message: string, fields: Record<string, unknown> = {}): void {
    const suppressed = this.admit(key);
    if (suppressed >= 0) this.logger.info(message, withSuppressed(fields, suppressed));
  }

  error(key: string, message: string, fields: Record<string, unknown> = {}): void {
    const suppressed = this.admit(key);
    if (suppressed >= 0) this.logger.error(message, withSuppressed(fields, suppressed));
  }

  /** -1 when the line is held back, else how many lines of this key were held back before it. */
  private admit(key: string): number {
    const now = this.now();
    const state = this.keys.get(key);
    if (state === undefined) {
      this.keys.set(key, { lastAt: now, suppressed: 0 });
      return 0;
    }
    if (now - state.lastAt < this.intervalMs) {
      state.suppressed++;
      return -1;
    }
    const suppressed = state.suppressed;
    state.lastAt = now;
    state.suppressed = 0;
    return suppressed;
  }
}

function withSuppressed(fields: Record<string, unknown>, suppressed: number): Record<string, unknown> {
  return suppressed === 0 ? fields : { ...fields, suppressed };
}
