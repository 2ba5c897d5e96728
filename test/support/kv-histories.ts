// Histories of the KV model that are linearizable by construction, for testing the checker: a
// sequential run of the model (each operation takes effect at one instant), with a call before and a
// return after that instant chosen at random, so intervals overlap the way real clients' do. Also an
// in-memory KV client with the service's semantics, to record histories without a cluster.
import { setTimeout as sleep } from 'node:timers/promises';
import { KvError, NOT_APPLIED } from '../../src/kv/kv-error.js';
import {
  kvModel, type KvClientLike, type KvInput, type KvOperation, type KvOutput, type KvState,
} from '../../src/testing/kv-model.js';
import { UNKNOWN } from '../../src/testing/linearizability.js';
import type { Random } from './random.js';

/** The output the service gives for `input` in `state`, and the state after it. */
export function runSequentially(state: KvState, input: KvInput): { output: KvOutput; next: KvState } {
  if (input.kind === 'get') return { output: { value: state.value, version: state.version }, next: state };
  if (input.expectedVersion !== undefined && input.expectedVersion !== state.version) {
    return { output: { ok: false, code: 'VERSION_CONFLICT', version: state.version }, next: state };
  }
  if (input.kind === 'delete' && state.value === null) {
    return { output: { ok: false, code: 'KEY_NOT_FOUND', version: state.version }, next: state };
  }
  const next = { value: input.kind === 'put' ? input.value : null, version: state.version + 1 };
  return { output: { ok: true, version: next.version }, next };
}

export interface GenerateOptions {
  readonly operations: number;
  readonly keys: number;
  readonly clients: number;
  /** Probability that a write that took effect is reported UNKNOWN (ret Infinity), as after a timeout. */
  readonly unknownRate?: number;
  /** Probability that a write never takes effect and is reported UNKNOWN. */
  readonly phantomRate?: number;
  /** The longest time from a call to its effect, and from the effect to the return. */
  readonly maxLatency?: number;
}

export interface GeneratedHistory {
  /** In call order, as a recorder would give them. */
  readonly operations: KvOperation[];
}

/**
 * `clients` clients, each one operation at a time (its next call after its previous return, even one
 * that timed out), over `keys` keys; a mix like the process test's: 40% get, 30% put, 20% conditional
 * put (half from the right version), 10% delete (half of them conditional).
 */
export function generateHistory(random: Random, options: GenerateOptions): GeneratedHistory {
  const maxLatency = options.maxLatency ?? 5;
  const clientTime = Array.from({ length: options.clients }, () => random.next() * maxLatency);
  const slots: { clientId: number; key: string; roll: number; call: number; point: number; ret: number }[] = [];
  for (let index = 0; index < options.operations; index++) {
    const clientId = random.int(options.clients);
    const call = (clientTime[clientId] as number) + random.next() * maxLatency;
    const point = call + random.next() * maxLatency;
    const ret = point + random.next() * maxLatency;
    clientTime[clientId] = ret;
    slots.push({ clientId, key: `k${random.int(options.keys)}`, roll: random.next(), call, point, ret });
  }
  // Apply in the order of the instants they take effect: that order is the linearization.
  const byPoint = slots.map((slot, index) => ({ slot, index })).sort((a, b) => a.slot.point - b.slot.point);
  const states = new Map<string, KvState>();
  const operations: KvOperation[] = new Array<KvOperation>(slots.length);
  let unique = 0;
  for (const { slot, index } of byPoint) {
    const state = states.get(slot.key) ?? kvModel.init();
    const guess = (): number =>
      random.chance(0.5) ? state.version : Math.max(0, state.version + random.pick([-2, -1, 1]));
    const input: KvInput = slot.roll < 0.4 ? { kind: 'get', key: slot.key }
      : slot.roll < 0.7 ? { kind: 'put', key: slot.key, value: `v${unique++}` }
        : slot.roll < 0.9 ? { kind: 'put', key: slot.key, value: `v${unique++}`, expectedVersion: guess() }
          : { kind: 'delete', key: slot.key, expectedVersion: random.chance(0.5) ? undefined : guess() };
    const base = { clientId: slot.clientId, input, call: slot.call };
    if (input.kind !== 'get' && random.chance(options.phantomRate ?? 0)) {
      operations[index] = { ...base, output: UNKNOWN, ret: Infinity };
      continue;
    }
    const { output, next } = runSequentially(state, input);
    states.set(slot.key, next);
    const unknown = input.kind !== 'get' && random.chance(options.unknownRate ?? 0);
    operations[index] = unknown ? { ...base, output: UNKNOWN, ret: Infinity } : { ...base, output, ret: slot.ret };
  }
  const callOf = (index: number): number => (slots[index] as { call: number }).call;
  const order = operations.map((_, index) => index).sort((a, b) => callOf(a) - callOf(b));
  return { operations: order.map((index) => operations[index] as KvOperation) };
}

/**
 * A copy of `history` with one read forged to be stale: it returns the state from before a write
 * that was acknowledged before the read began. Versions only grow, so no order can explain it; a
 * checker that accepts it is broken. Undefined when the history has no such read and write.
 */
export function forgeStaleRead(
  history: readonly KvOperation[],
): { history: KvOperation[]; read: KvOperation } | undefined {
  for (let index = history.length - 1; index >= 0; index--) {
    const read = history[index] as KvOperation;
    if (read.input.kind !== 'get' || read.output === UNKNOWN) continue;
    const key = read.input.key;
    const written = history.find((write) => write.input.kind !== 'get' && write.input.key === key &&
      write.output !== UNKNOWN && 'ok' in write.output && write.output.ok && write.ret < read.call);
    if (written === undefined) continue;
    const version = (written.output as { version: number }).version - 1;
    const forged = { ...read, output: { value: valueAt(history, key, version), version } };
    return { history: history.map((operation) => operation === read ? forged : operation), read: forged };
  }
  return undefined;
}

/** The value `key` held at `version`, as some operation of the history shows it (null if none does). */
function valueAt(history: readonly KvOperation[], key: string, version: number): string | null {
  for (const { input, output } of history) {
    if (input.key !== key || output === UNKNOWN || output.version !== version) continue;
    if (!('ok' in output)) return output.value;
    if (output.ok) return input.kind === 'put' ? input.value : null;
  }
  return null;
}

/**
 * An in-memory KV with the service's semantics behind the client interface: every call waits a
 * random moment, takes effect atomically, and waits again before it answers, so concurrent calls
 * overlap. `stateAt` tells what a key held at each version, to forge stale reads.
 */
export class FakeKv implements KvClientLike {
  private readonly random: Random;
  private readonly maxDelayMs: number;
  /** Per key, its states by version: every applied write adds exactly one version. */
  private readonly states = new Map<string, KvState[]>();

  constructor(random: Random, maxDelayMs = 2) {
    this.random = random;
    this.maxDelayMs = maxDelayMs;
  }

  async get(key: string): Promise<{ value: string | null; version: number }> {
    return await this.call({ kind: 'get', key }) as { value: string | null; version: number };
  }

  async put(key: string, value: string, options: { version?: number } = {}): Promise<{ version: number }> {
    return await this.write({ kind: 'put', key, value, expectedVersion: options.version });
  }

  /** Like KvClient: a key that is not set answers deleted: false. */
  async delete(key: string, options: { version?: number } = {}): Promise<{ version: number; deleted: boolean }> {
    const output = await this.call({ kind: 'delete', key, expectedVersion: options.version });
    if ('ok' in output && !output.ok && output.code === 'KEY_NOT_FOUND') return { version: output.version, deleted: false };
    return { ...await this.answer(output), deleted: true };
  }

  stateAt(key: string, version: number): KvState | undefined {
    return this.states.get(key)?.[version];
  }

  private async write(input: KvInput): Promise<{ version: number }> {
    return await this.answer(await this.call(input));
  }

  private async answer(output: KvOutput): Promise<{ version: number }> {
    if ('ok' in output && !output.ok) {
      throw new KvError('VERSION_CONFLICT', `at version ${output.version}`, { ...NOT_APPLIED, version: output.version });
    }
    return { version: output.version };
  }

  private async call(input: KvInput): Promise<KvOutput> {
    await sleep(this.random.int(this.maxDelayMs + 1));
    const list = this.states.get(input.key) ?? [kvModel.init()];
    this.states.set(input.key, list);
    const { output, next } = runSequentially(list[list.length - 1] as KvState, input);
    if (next.version !== list.length - 1) list.push(next);
    await sleep(this.random.int(this.maxDelayMs + 1));
    return output;
  }
}
