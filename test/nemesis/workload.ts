// The clients of a nemesis run: some KvClients (they follow masters and fail over) and some plain HTTP
// clients (each call to a node picked at random, which forwards to the master). Each loops over a
// random mix of linearizable reads, stale reads, puts of unique values, compare-and-set (a put
// conditional on the version the client last read) and deletes. Linearizable operations are
// recorded for the checker; stale reads, which are allowed to be old, are recorded apart and checked
// against the writes (test/nemesis/checks.ts).
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import { KvError } from '../../src/kv/kv-error.js';
import { historyRecorder, type HistoryRecorder, type KvInput } from '../../src/testing/kv-model.js';
import type { Random } from '../support/random.js';
import { PlainHttpKv } from './plain-http-kv.js';

export type ClientKind = 'kv-client' | 'plain-http';

export interface StaleRead {
  readonly clientId: string;
  readonly key: string;
  readonly call: number;
  readonly ret: number;
  /** Undefined when the read failed. */
  readonly output: { readonly value: string | null; readonly version: number } | undefined;
  readonly error: string | undefined;
}

export interface WorkloadOptions {
  readonly endpoints: readonly string[];
  readonly kvClients: number;
  readonly plainClients: number;
  /**
   * The keys client `clientIndex` works on. The driver gives each client the keys of one group, so
   * that a client stuck on a group without a master does not starve another group of writes: the
   * longest time without a write in a group then measures that group, not the clients' loop.
   */
  readonly keysOf: (clientIndex: number) => readonly string[];
  readonly timeoutMs: number;
  /** One generator per client, so that a seed replays each client's choices. */
  readonly randomFor: (clientIndex: number) => Random;
}

export interface ClientInfo {
  readonly id: string;
  readonly kind: ClientKind;
}

interface StaleCapable {
  get(key: string, options: { timeoutMs?: number; stale?: boolean }):
    Promise<{ value: string | null; version: number }>;
}

export class Workload {
  readonly recorder: HistoryRecorder = historyRecorder();
  readonly staleReads: StaleRead[] = [];
  readonly clients: ClientInfo[] = [];
  private readonly options: WorkloadOptions;
  private readonly closers: (() => void)[] = [];
  private stopped = false;
  private running: Promise<unknown> | undefined;

  constructor(options: WorkloadOptions) {
    this.options = options;
  }

  start(): void {
    const { endpoints, kvClients, plainClients, timeoutMs } = this.options;
    const loops: Promise<void>[] = [];
    for (let index = 0; index < kvClients + plainClients; index++) {
      const random = this.options.randomFor(index);
      const kind: ClientKind = index < kvClients ? 'kv-client' : 'plain-http';
      const id = kind === 'kv-client' ? `kv-${index + 1}` : `http-${index - kvClients + 1}`;
      this.clients.push({ id, kind });
      let client: KvClient | PlainHttpKv;
      if (kind === 'kv-client') {
        const kv = new KvClient({ endpoints, timeoutMs });
        this.closers.push(() => kv.close());
        client = kv;
      } else {
        // The server's own write timeout (5 s) is shorter, so it answers rather than our timer.
        client = new PlainHttpKv(() => random.pick(endpoints), timeoutMs + 3_000);
      }
      loops.push(this.loop(id, client, random, this.options.keysOf(index)));
    }
    this.running = Promise.all(loops);
  }

  /** Stop issuing operations and wait for those in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    for (const close of this.closers) close();
  }

  private async loop(
    id: string, client: KvClient | PlainHttpKv, random: Random, keys: readonly string[],
  ): Promise<void> {
    const lastRead = new Map<string, number>();
    for (let seq = 0; !this.stopped; seq++) {
      const key = random.pick(keys);
      const roll = random.next();
      const value = `${id}-${seq}`;
      if (roll < 0.15) {
        await this.staleRead(id, client, key);
        continue;
      }
      const input: KvInput = roll < 0.45 ? { kind: 'get', key }
        : roll < 0.7 ? { kind: 'put', key, value }
          : roll < 0.9 ? { kind: 'put', key, value, expectedVersion: lastRead.get(key) ?? 0 }
            : { kind: 'delete', key, expectedVersion: random.chance(0.5) ? lastRead.get(key) : undefined };
      const output = await this.recorder.perform(id, client, input, { timeoutMs: this.options.timeoutMs });
      if (output !== undefined && 'version' in output) lastRead.set(key, output.version);
      // A failed call may have failed at once (a refused connection): a breath avoids a hot loop.
      if (output === undefined) await sleep(20);
    }
  }

  private async staleRead(id: string, client: StaleCapable, key: string): Promise<void> {
    const call = performance.now();
    try {
      const output = await client.get(key, { timeoutMs: this.options.timeoutMs, stale: true });
      this.staleReads.push({ clientId: id, key, call, ret: performance.now(), output, error: undefined });
    } catch (error) {
      const code = error instanceof KvError ? error.code : String(error);
      this.staleReads.push({ clientId: id, key, call, ret: performance.now(), output: undefined, error: code });
      await sleep(20);
    }
  }
}
