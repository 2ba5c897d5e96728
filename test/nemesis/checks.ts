// What a nemesis run must show besides linearizability (which src/testing/linearizability.ts judges):
// stale reads that only ever return a value that was written, at the version it was written at, and
// not before it was written; no acknowledged write lost; and, per fault, the longest time without a
// successful write, cluster-wide and per client.
import type { KvOutput, RecordedOperation } from '../../src/testing/kv-model.js';
import type { StaleRead } from './workload.js';

/**
 * A stale read may be old, but never invented: it returns the initial state (version 0, no value),
 * or the value of a write of that key that was called before the read returned and that produced
 * that version (acknowledged at it, or of unknown outcome). Values are unique per put, so a value
 * names its write. Returns the reads that break this, described.
 */
export function inventedStaleReads(reads: readonly StaleRead[], operations: readonly RecordedOperation[]): string[] {
  const writesByKey = new Map<string, RecordedOperation[]>();
  for (const operation of operations) {
    if (operation.input.kind === 'get') continue;
    const list = writesByKey.get(operation.input.key) ?? [];
    list.push(operation);
    writesByKey.set(operation.input.key, list);
  }
  const problems: string[] = [];
  for (const read of reads) {
    if (read.output === undefined) continue;
    const { value, version } = read.output;
    if (version === 0) {
      if (value !== null) problems.push(`${describe(read)}: a value at version 0`);
      continue;
    }
    const explains = (writesByKey.get(read.key) ?? []).some((write) => {
      if (write.call > read.ret) return false;
      const input = write.input;
      const wrote = input.kind === 'put' ? input.value : null;
      if (wrote !== value) return false;
      if (write.outcome === 'unknown' || write.outcome === 'pending') return true;
      const output = write.output as KvOutput | undefined;
      return write.outcome === 'ok' && output !== undefined && 'ok' in output && output.ok && output.version === version;
    });
    if (!explains) problems.push(`${describe(read)}: no write of this key made it`);
  }
  return problems;
}

function describe(read: StaleRead): string {
  return `stale read of ${JSON.stringify(read.key)} by ${read.clientId} at ${Math.round(read.call)} ms returned ` +
    `${JSON.stringify(read.output?.value)} @${read.output?.version}`;
}

/**
 * Acknowledged writes against the final state: per key, the final version is at least the highest
 * acknowledged one, and when it is that one, the value is that write's. Returns what was lost.
 */
export function lostWrites(
  operations: readonly RecordedOperation[], final: ReadonlyMap<string, { value: string | null; version: number }>,
): string[] {
  const highest = new Map<string, RecordedOperation>();
  for (const operation of operations) {
    const output = operation.output;
    if (operation.input.kind === 'get' || operation.outcome !== 'ok' || output === undefined) continue;
    if (!('ok' in output) || !output.ok) continue;
    const best = highest.get(operation.input.key);
    if (best === undefined || (best.output as { version: number }).version < output.version) {
      highest.set(operation.input.key, operation);
    }
  }
  const lost: string[] = [];
  for (const [key, write] of highest) {
    const version = (write.output as { version: number }).version;
    const state = final.get(key);
    const wrote = write.input.kind === 'put' ? write.input.value : null;
    if (state === undefined || state.version < version || (state.version === version && state.value !== wrote)) {
      lost.push(`${JSON.stringify(key)}: ${write.clientId} was acknowledged ${JSON.stringify(wrote)} @${version}, ` +
        `the final state is ${JSON.stringify(state?.value)} @${state?.version}`);
    }
  }
  return lost;
}

/**
 * The longest stretch of [from, to] with no successful write completing (`done`: completion times,
 * sorted or not): from `from` to the first, between two, and from the last to `to`.
 */
export function longestGap(done: readonly number[], from: number, to: number): number {
  const inside = done.filter((time) => time > from && time < to).sort((a, b) => a - b);
  let longest = 0;
  let previous = from;
  for (const time of [...inside, to]) {
    longest = Math.max(longest, time - previous);
    previous = time;
  }
  return longest;
}

/**
 * Completion times of the writes that succeeded (applied, acknowledged): all together, per client,
 * and per group (`groupOf` a key's group).
 */
export function successfulWrites(
  operations: readonly RecordedOperation[], groupOf: (key: string) => number = () => 0,
): { all: number[]; byClient: Map<string, number[]>; byGroup: Map<number, number[]> } {
  const all: number[] = [];
  const byClient = new Map<string, number[]>();
  const byGroup = new Map<number, number[]>();
  for (const operation of operations) {
    const output = operation.output;
    if (operation.input.kind === 'get' || operation.outcome !== 'ok' || output === undefined || operation.ret === undefined) {
      continue;
    }
    if (!('ok' in output) || !output.ok) continue;
    all.push(operation.ret);
    const id = String(operation.clientId);
    const list = byClient.get(id) ?? [];
    list.push(operation.ret);
    byClient.set(id, list);
    const group = groupOf(operation.input.key);
    const inGroup = byGroup.get(group) ?? [];
    inGroup.push(operation.ret);
    byGroup.set(group, inGroup);
  }
  return { all, byClient, byGroup };
}
