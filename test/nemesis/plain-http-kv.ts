// A client of the KV HTTP API with nothing of KvClient: one plain request per call (fetch) to a node
// chosen per call, no master routing, no retries. A node that is not the master forwards the request
// itself, so these clients test the servers' forwarding across faults. Failures become KvErrors with
// the outcome the server stated; without an answer a write may have been applied unless the
// connection was refused.
import { KvError, isKvErrorCode, NOT_APPLIED } from '../../src/kv/kv-error.js';
import type { KvClientLike, KvReadOutput, KvWriteCallOptions } from '../../src/testing/kv-model.js';

export class PlainHttpKv implements KvClientLike {
  /** The node of the last call. */
  lastEndpoint = '';
  private readonly pickEndpoint: () => string;
  private readonly timeoutMs: number;

  constructor(pickEndpoint: () => string, timeoutMs: number) {
    this.pickEndpoint = pickEndpoint;
    this.timeoutMs = timeoutMs;
  }

  async get(key: string, options: { stale?: boolean; timeoutMs?: number } = {}): Promise<KvReadOutput> {
    try {
      const body = await this.send('GET', `${path(key)}${options.stale === true ? '?stale=true' : ''}`, undefined);
      return { value: body.value as string, version: body.version as number };
    } catch (error) {
      if (error instanceof KvError && error.code === 'KEY_NOT_FOUND') return { value: null, version: error.version ?? 0 };
      throw error;
    }
  }

  async put(key: string, value: string, options: KvWriteCallOptions = {}): Promise<{ version: number }> {
    const body = await this.send('PUT', path(key),
      JSON.stringify(options.version === undefined ? { value } : { value, version: options.version }));
    return { version: body.version as number };
  }

  async delete(key: string, options: KvWriteCallOptions = {}): Promise<{ version: number; deleted: boolean }> {
    try {
      const body = await this.send('DELETE', `${path(key)}${options.version === undefined ? '' : `?version=${options.version}`}`,
        undefined);
      return { version: body.version as number, deleted: true };
    } catch (error) {
      if (error instanceof KvError && error.code === 'KEY_NOT_FOUND') return { version: error.version ?? 0, deleted: false };
      throw error;
    }
  }

  private async send(method: string, target: string, body: string | undefined): Promise<Record<string, unknown>> {
    const isWrite = method !== 'GET';
    const endpoint = this.pickEndpoint();
    this.lastEndpoint = endpoint;
    let response: Response;
    let parsed: Record<string, unknown>;
    try {
      response = await fetch(`${endpoint}${target}`, {
        method, body, signal: AbortSignal.timeout(this.timeoutMs),
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
      });
      parsed = await response.json() as Record<string, unknown>;
    } catch (error) {
      const refused = (error as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED';
      const reason = (error as Error).name === 'TimeoutError' ? 'TIMEOUT' : 'UNAVAILABLE';
      throw new KvError(reason, `${endpoint}: ${(error as Error).message}`,
        isWrite && !refused ? { mayHaveBeenApplied: true } : NOT_APPLIED);
    }
    if (response.ok) return parsed;
    const code = isKvErrorCode(parsed.error) ? parsed.error : 'INTERNAL';
    throw new KvError(code, `${endpoint}: ${String(parsed.message)}`, {
      mayHaveBeenApplied: isWrite && parsed.mayHaveBeenApplied !== false,
      version: typeof parsed.version === 'number' ? parsed.version : undefined,
    });
  }
}

function path(key: string): string {
  return `/v1/kv/${encodeURIComponent(key)}`;
}
