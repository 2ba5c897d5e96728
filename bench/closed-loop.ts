/**
 * A closed-loop load generator: `clients` callers, each with one operation in flight, each issuing
 * its next put as soon as the last one settles. The first `warmupMs` are not measured; the
 * measurement then covers every put that starts in the next `durationMs` (each is awaited, so none
 * is cut off and the elapsed time runs until the last of them settles). Errors are counted, never
 * thrown.
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';

const MAX_ERROR_SAMPLES = 3;

export interface ClosedLoopOptions {
  readonly clients: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  /** One operation; `sequence` counts from 0 per client over warm-up and measurement alike. */
  readonly put: (clientIndex: number, sequence: number) => Promise<void>;
}

export interface ClosedLoopResult {
  /** Puts that started in the measured window and succeeded. */
  readonly ops: number;
  readonly opsPerSec: number;
  /** Latency percentiles of those puts (nearest rank); NaN when none succeeded. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Puts that started in the measured window and failed. */
  readonly errors: number;
  /** Puts that failed during the warm-up (not part of the measurement). */
  readonly warmupErrors: number;
  /** The first few distinct messages of failed puts (measured or warm-up), so a run says why. */
  readonly errorSamples: readonly string[];
  /** From the end of the warm-up until the last measured put settled. */
  readonly durationMs: number;
}

export async function runClosedLoop(options: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const { clients, durationMs, warmupMs, put } = options;
  if (!Number.isSafeInteger(clients) || clients < 1) throw new RangeError(`clients must be ≥ 1; got ${clients}`);
  if (!(durationMs > 0)) throw new RangeError(`durationMs must be > 0; got ${durationMs}`);
  if (!(warmupMs >= 0)) throw new RangeError(`warmupMs must be ≥ 0; got ${warmupMs}`);
  const start = performance.now();
  const measureFrom = start + warmupMs;
  const measureUntil = measureFrom + durationMs;
  const latencies: number[] = [];
  let errors = 0;
  let warmupErrors = 0;
  const errorSamples = new Set<string>();
  let lastSettled = measureFrom;

  const client = async (clientIndex: number): Promise<void> => {
    for (let sequence = 0; ; sequence++) {
      const began = performance.now();
      if (began >= measureUntil) return;
      const measured = began >= measureFrom;
      let failed = false;
      try {
        await put(clientIndex, sequence);
      } catch (error) {
        failed = true;
        const message = error instanceof Error ? error.message : String(error);
        if (errorSamples.size < MAX_ERROR_SAMPLES) errorSamples.add(message);
      }
      const settled = performance.now();
      if (measured) {
        lastSettled = Math.max(lastSettled, settled);
        if (failed) errors++;
        else latencies.push(settled - began);
      } else if (failed) {
        warmupErrors++;
      }
      // A put that fails at once must not keep this loop spinning on microtasks alone.
      if (failed) await yieldToEventLoop();
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, index) => client(index)));

  latencies.sort((a, b) => a - b);
  const elapsedMs = Math.max(lastSettled - measureFrom, durationMs);
  return {
    ops: latencies.length,
    opsPerSec: latencies.length / (elapsedMs / 1000),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
    warmupErrors,
    errorSamples: [...errorSamples],
    durationMs: elapsedMs,
  };
}

/** The nearest-rank percentile of an ascending array; NaN for an empty one. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}
