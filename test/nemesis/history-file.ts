// The history a nemesis run writes (history.json): every client operation with its interval and
// outcome, every fault with its interval, and the run's settings. Times are ms from the start of the
// load. The timeline picture is drawn from this file alone, so it can be redrawn later.
import type { KvOutput, RecordedOperation } from '../../src/testing/kv-model.js';
import type { ClientInfo, StaleRead } from './workload.js';

export interface FaultEntry {
  readonly kind: string;
  readonly label: string;
  readonly nodes: readonly number[];
  readonly start: number;
  readonly end: number;
  /** What the fault found out (e.g. how long a new node took to catch up). */
  readonly outcome?: string;
}

export interface OperationEntry {
  readonly client: string;
  readonly op: 'get' | 'stale-get' | 'put' | 'cas' | 'delete';
  readonly key: string;
  readonly value?: string;
  readonly expectedVersion?: number;
  readonly call: number;
  /** Null: never returned (still pending when the run ended). */
  readonly ret: number | null;
  /** 'ok' includes answered refusals (a version conflict); 'unknown': a write that may have been applied. */
  readonly outcome: 'ok' | 'fail' | 'unknown';
  readonly output?: KvOutput;
  readonly error?: string;
}

export interface HistoryFile {
  readonly seed: number;
  readonly leaseMs: number;
  readonly nodes: readonly number[];
  readonly clockRates: Readonly<Record<string, number>>;
  readonly clients: readonly ClientInfo[];
  readonly faults: readonly FaultEntry[];
  readonly operations: readonly OperationEntry[];
  /** When the load stopped. */
  readonly end: number;
}

/** Recorded operations and stale reads as history entries, relative to `origin`, in call order. */
export function historyEntries(
  recorded: readonly RecordedOperation[], staleReads: readonly StaleRead[], origin: number,
): OperationEntry[] {
  const at = (time: number): number => Math.round((time - origin) * 10) / 10;
  const entries: OperationEntry[] = recorded.map((entry) => {
    const { input } = entry;
    const op = input.kind === 'put' && input.expectedVersion !== undefined ? 'cas' : input.kind;
    const outcome = entry.outcome === 'ok' ? 'ok' : entry.outcome === 'failed' ? 'fail' : 'unknown';
    return {
      client: String(entry.clientId), op, key: input.key,
      ...(input.kind === 'put' ? { value: input.value } : {}),
      ...(input.kind !== 'get' && input.expectedVersion !== undefined ? { expectedVersion: input.expectedVersion } : {}),
      call: at(entry.call), ret: entry.ret === undefined ? null : at(entry.ret), outcome,
      ...(entry.output === undefined ? {} : { output: entry.output }),
      ...(entry.error === undefined ? {} : { error: entry.error.code }),
    };
  });
  for (const read of staleReads) {
    entries.push({
      client: read.clientId, op: 'stale-get', key: read.key, call: at(read.call), ret: at(read.ret),
      outcome: read.output === undefined ? 'fail' : 'ok',
      ...(read.output === undefined ? {} : { output: read.output }),
      ...(read.error === undefined ? {} : { error: read.error }),
    });
  }
  return entries.sort((a, b) => a.call - b.call);
}
