/**
 * Natural batching (PhxPaxos BatchPaxosValues): proposals that queue while an instance is in
 * flight are agreed on together as one value addressed to the reserved batch state machine. Each
 * entry is a complete framed value (its own state machine id and payload), so a batch executes
 * exactly as its entries would one after another.
 *
 * Layout after the batch id: u32 entry count, then per entry u32 length and the framed bytes
 * (little-endian). Decoding is strict: a batch is only ever written by `encodeBatch`, so anything
 * else is corruption and must not be executed.
 */
import { BATCH_STATE_MACHINE_ID } from './value-frame.js';

const COUNT_BYTES = 4;
const LENGTH_BYTES = 4;

/** The bytes a batch adds around its entries: the id, the count, and one length per entry. */
export function batchOverheadBytes(entries: number): number {
  return 4 + COUNT_BYTES + entries * LENGTH_BYTES;
}

export function encodeBatch(entries: readonly Uint8Array[]): Uint8Array {
  let size = batchOverheadBytes(entries.length);
  for (const entry of entries) size += entry.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, BATCH_STATE_MACHINE_ID, true);
  view.setUint32(4, entries.length, true);
  let offset = 8;
  for (const entry of entries) {
    view.setUint32(offset, entry.length, true);
    out.set(entry, offset + LENGTH_BYTES);
    offset += LENGTH_BYTES + entry.length;
  }
  return out;
}

/** `payload` is the value after its batch id. Throws on anything `encodeBatch` cannot have written. */
export function decodeBatch(payload: Uint8Array): Uint8Array[] {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  if (payload.length < COUNT_BYTES) throw new Error('batch value is shorter than its entry count');
  const count = view.getUint32(0, true);
  if (count * LENGTH_BYTES > payload.length - COUNT_BYTES) {
    throw new Error(`batch value claims ${count} entries but holds ${payload.length} bytes`);
  }
  const entries: Uint8Array[] = [];
  let offset = COUNT_BYTES;
  for (let i = 0; i < count; i++) {
    if (offset + LENGTH_BYTES > payload.length) throw new Error(`batch entry ${i} has no length`);
    const length = view.getUint32(offset, true);
    offset += LENGTH_BYTES;
    if (length > payload.length - offset) throw new Error(`batch entry ${i} runs past the end of the value`);
    entries.push(payload.subarray(offset, offset + length));
    offset += length;
  }
  if (offset !== payload.length) throw new Error(`batch value has ${payload.length - offset} trailing bytes`);
  return entries;
}

/**
 * The contexts of a batch's proposers, in entry order; the registry hands each entry its own.
 * A class, so the registry can tell it from a user's context.
 */
export class BatchContexts {
  readonly contexts: readonly unknown[];

  constructor(contexts: readonly unknown[]) {
    this.contexts = contexts;
  }
}

/**
 * A batch entry failed after the entries before it ran. Those are done for good (a retry resumes
 * at the failed entry), so their callers learn they were chosen, with their results.
 */
export class BatchEntryError extends Error {
  readonly index: number;
  readonly results: readonly unknown[];

  constructor(index: number, results: readonly unknown[], cause: unknown) {
    super(`batch entry ${index} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'BatchEntryError';
    this.index = index;
    this.results = results;
  }
}
