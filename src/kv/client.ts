/**
 * The KV client (`multipaxos/kv`): talks to the HTTP API of any nodes of a cluster.
 *
 *   const kv = new KvClient({ endpoints: ['http://127.0.0.1:8081', 'http://127.0.0.1:8082'] });
 *   const { version } = await kv.put('a', 'hello');
 *   const { value } = await kv.get('a');           // linearizable, on the master
 *   await kv.put('a', 'again', { version });        // compare-and-set
 *
 * It follows the master: it learns each group's master endpoint from the answers and sends the
 * next request for that group there. It retries only what is safe: any read, and a write only
 * when it certainly was not applied (refused connection, NOT_MASTER, NO_MASTER while an election
 * runs, OVERLOADED). A write whose outcome is unknown fails with `mayHaveBeenApplied: true`
 * rather than being sent twice. Every call has a deadline (`timeoutMs`) and takes an AbortSignal.
 */
import { Agent, request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { TIMEOUT_HEADER } from './http-headers.js';
import { LONE_SURROGATE } from './kv-command.js';
import { groupOfKey } from './key-hash.js';
import { isKvErrorCode, KvError, type KvErrorCode } from './kv-error.js';

export interface KvClientOptions {
  /** HTTP endpoints of some nodes of the cluster, like `http://127.0.0.1:8081`. */
  readonly endpoints: readonly string[];
  /** The default deadline of a call (10,000 ms). */
  readonly timeoutMs?: number;
}

export interface KvCallOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface KvPutOptions extends KvCallOptions {
  /** Apply only when the key is at this version (0: never written). */
  readonly version?: number;
}

export interface KvGetOptions extends KvCallOptions {
  /** Read whichever node answers, from its local state: fast, possibly behind. */
  readonly stale?: boolean;
}

export interface KvValue {
  readonly key: string;
  /** null when the key was never written or is deleted. */
  readonly value: string | null;
  readonly version: number;
}

interface HttpReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Record<string, unknown>;
}

/** How long a call waits before trying again while the cluster elects a master or sheds load. */
const BACKOFF_MS = [20, 50, 100, 200, 400, 500];
const MAX_REPLY_BYTES = 16 * 1024 * 1024;
const RETRY_SAME_ENDPOINT: ReadonlySet<KvErrorCode> = new Set(['NO_MASTER', 'OVERLOADED']);

export class KvClient {
  private readonly endpoints: readonly string[];
  private readonly timeoutMs: number;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 512 });
  /** Learned from answers: the number of groups, and each group's master endpoint. */
  private groups: number | undefined;
  private readonly masters = new Map<number, string>();
  private next = 0;

  constructor(options: KvClientOptions) {
    if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) {
      throw new KvError('BAD_REQUEST', 'a KvClient needs at least one endpoint');
    }
    this.endpoints = options.endpoints.map((endpoint) => normalizeEndpoint(endpoint));
    this.timeoutMs = checkedTimeout(options.timeoutMs ?? 10_000);
  }

  async put(key: string, value: string, options: KvPutOptions = {}): Promise<{ key: string; version: number }> {
    if (typeof value !== 'string') throw new KvError('BAD_REQUEST', 'a value is a string');
    const body = JSON.stringify(options.version === undefined ? { value } : { value, version: options.version });
    const reply = await this.call(key, 'PUT', kvPath(key), body, options);
    return { key, version: reply.body.version as number };
  }

  async get(key: string, options: KvGetOptions = {}): Promise<KvValue> {
    const path = `${kvPath(key)}${options.stale === true ? '?stale=true' : ''}`;
    try {
      const reply = await this.call(key, 'GET', path, undefined, options);
      return { key, value: reply.body.value as string, version: reply.body.version as number };
    } catch (error) {
      if (error instanceof KvError && error.code === 'KEY_NOT_FOUND') return { key, value: null, version: error.version ?? 0 };
      throw error;
    }
  }

  async delete(key: string, options: KvPutOptions = {}): Promise<{ key: string; version: number }> {
    const path = `${kvPath(key)}${options.version === undefined ? '' : `?version=${options.version}`}`;
    const reply = await this.call(key, 'DELETE', path, undefined, options);
    return { key, version: reply.body.version as number };
  }

  /** One node's /status (the first endpoint that answers, or the one given). */
  async status(endpoint?: string, options: KvCallOptions = {}): Promise<Record<string, unknown>> {
    const targets = endpoint === undefined ? this.endpoints : [normalizeEndpoint(endpoint)];
    const deadline = performance.now() + checkedTimeout(options.timeoutMs ?? this.timeoutMs);
    let last: unknown;
    for (const target of targets) {
      try {
        const reply = await this.send(target, 'GET', '/status', undefined, deadline, options.signal);
        if (reply.status === 200) return reply.body;
        last = errorOf(reply, false);
      } catch (error) {
        last = error;
      }
    }
    throw last instanceof KvError ? last : new KvError('UNAVAILABLE', `no endpoint answered: ${String(last)}`);
  }

  close(): void {
    this.agent.destroy();
  }

  private async call(
    key: string, method: string, path: string, body: string | undefined, options: KvCallOptions,
  ): Promise<HttpReply> {
    if (typeof key !== 'string' || key.length === 0) throw new KvError('BAD_REQUEST', 'a key is a non-empty string');
    const isWrite = method !== 'GET';
    const deadline = performance.now() + checkedTimeout(options.timeoutMs ?? this.timeoutMs);
    let failures = 0;
    let redirects = 0;
    /** Connections refused in a row: when every endpoint refuses twice over, the cluster is down. */
    let refusals = 0;
    let endpoint = this.endpointFor(key);
    for (;;) {
      let reply: HttpReply;
      try {
        reply = await this.send(endpoint, method, path, body, deadline, options.signal);
      } catch (error) {
        const failure = error as KvError;
        // A write that may have been applied is never sent again: it could apply twice.
        if (isWrite && failure.mayHaveBeenApplied) throw failure;
        if (failure.code === 'ABORTED' || failure.code === 'TIMEOUT') throw failure;
        refusals = isRefused(failure) ? refusals + 1 : 0;
        if (refusals >= 2 * this.endpoints.length) {
          throw new KvError('UNAVAILABLE', `no endpoint accepts connections (${this.endpoints.join(', ')})`,
            { cause: failure });
        }
        endpoint = this.rotate(key, endpoint);
        await this.pause(++failures, deadline, options.signal, failure);
        continue;
      }
      refusals = 0;
      // A stale read may be answered by any node: it says nothing of who the master is.
      if (!path.includes('?stale=true')) this.learn(key, reply);
      if (reply.status >= 200 && reply.status < 300) return reply;
      const failure = errorOf(reply, isWrite);
      if (failure.code === 'NOT_MASTER' && failure.master?.endpoint !== undefined) {
        endpoint = normalizeEndpoint(failure.master.endpoint);
        // Follow a redirect at once; if nodes keep pointing elsewhere, the cluster is changing: back off.
        await this.pause(++failures, deadline, options.signal, failure, redirects++ === 0 ? 0 : undefined);
        continue;
      }
      const retryable = RETRY_SAME_ENDPOINT.has(failure.code) || failure.code === 'NOT_MASTER' ||
        ((failure.code === 'UNAVAILABLE' || failure.code === 'TIMEOUT') && (!isWrite || !failure.mayHaveBeenApplied));
      if (!retryable) throw failure;
      if (!RETRY_SAME_ENDPOINT.has(failure.code)) endpoint = this.rotate(key, endpoint);
      await this.pause(++failures, deadline, options.signal, failure);
    }
  }

  /** The master of the key's group when known, else the next endpoint in turn. */
  private endpointFor(key: string): string {
    if (this.groups !== undefined) {
      const master = this.masters.get(groupOfKey(key, this.groups));
      if (master !== undefined) return master;
    }
    const endpoint = this.endpoints[this.next % this.endpoints.length] as string;
    this.next++;
    return endpoint;
  }

  private rotate(key: string, failed: string): string {
    if (this.groups !== undefined) {
      const group = groupOfKey(key, this.groups);
      if (this.masters.get(group) === failed) this.masters.delete(group);
    }
    const index = this.endpoints.indexOf(failed);
    return this.endpoints[(index + 1) % this.endpoints.length] as string;
  }

  /** Answers name the node that served them (the master, for a linearizable read or a write). */
  private learn(key: string, reply: HttpReply): void {
    const groups = Number(reply.headers['x-multipaxos-groups']);
    if (Number.isSafeInteger(groups) && groups > 0) {
      if (groups !== this.groups) this.masters.clear();
      this.groups = groups;
    }
    const served = reply.headers['x-multipaxos-endpoint'];
    const group = Number(reply.headers['x-multipaxos-group']);
    const authoritative = reply.status < 500 && reply.status !== 404 && reply.status !== 429;
    if (typeof served === 'string' && Number.isSafeInteger(group) && authoritative && this.groups !== undefined &&
      groupOfKey(key, this.groups) === group && reply.body.error !== 'NOT_MASTER') {
      this.masters.set(group, normalizeEndpoint(served));
    }
  }

  private async pause(
    attempt: number, deadline: number, signal: AbortSignal | undefined, last: KvError, delayMs?: number,
  ): Promise<void> {
    const wait = delayMs ?? BACKOFF_MS[Math.min(attempt - 1, BACKOFF_MS.length - 1)] as number;
    if (performance.now() + wait >= deadline) {
      throw new KvError('TIMEOUT', `gave up before the deadline; last error: ${last.code}: ${last.message}`,
        { mayHaveBeenApplied: false, cause: last });
    }
    if (attempt > 1000) throw last;
    if (wait > 0) {
      await sleep(wait, undefined, { signal }).catch(() => {
        throw new KvError('ABORTED', 'the caller aborted', { mayHaveBeenApplied: false });
      });
    }
  }

  private send(
    endpoint: string, method: string, path: string, body: string | undefined, deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<HttpReply> {
    const isWrite = method !== 'GET';
    const timeoutMs = Math.floor(deadline - performance.now());
    if (timeoutMs <= 0) return Promise.reject(new KvError('TIMEOUT', 'the deadline passed', { mayHaveBeenApplied: false }));
    if (signal?.aborted === true) return Promise.reject(new KvError('ABORTED', 'the caller aborted'));
    const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
    return new Promise<HttpReply>((resolve, reject) => {
      let sent = false;
      const headers: Record<string, string | number> = {
        // The server gives up a little before we do, so that its answer, not our timer, tells the outcome.
        [TIMEOUT_HEADER]: String(Math.max(1, Math.floor(Math.min(60_000, timeoutMs - Math.min(250, timeoutMs / 10))))),
      };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = payload.length;
      }
      // The path goes as it is: a URL would resolve the dot segments of the keys "." and "..".
      const options = { method, path, agent: this.agent, headers, signal };
      const outgoing = httpRequest(new URL(endpoint), options, (incoming) => {
        const chunks: Buffer[] = [];
        let size = 0;
        incoming.on('data', (chunk: Buffer) => {
          size += chunk.length;
          // A value is at most 1 MiB (6 MiB as escaped JSON): a bigger answer is not from a KV node.
          if (size > MAX_REPLY_BYTES) incoming.destroy(new Error(`${endpoint} answered more than ${MAX_REPLY_BYTES} bytes`));
          else chunks.push(chunk);
        });
        incoming.once('error', (error) => reject(networkError(error, isWrite, true)));
        incoming.once('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
            reject(new KvError('UNAVAILABLE', `${endpoint} answered ${incoming.statusCode} without a JSON object`,
              { mayHaveBeenApplied: isWrite }));
            return;
          }
          const status = incoming.statusCode ?? 0;
          resolve({ status, headers: incoming.headers, body: parsed as Record<string, unknown> });
        });
      });
      outgoing.once('socket', (socket) => {
        if (!socket.connecting) sent = true;
        else socket.once('connect', () => { sent = true; });
      });
      outgoing.setTimeout(timeoutMs, () => outgoing.destroy(new KvError('TIMEOUT',
        `no answer from ${endpoint} within the deadline${isWrite && sent ? '; the write may have been applied' : ''}`,
        { mayHaveBeenApplied: isWrite && sent })));
      outgoing.once('error', (error) => reject(networkError(error, isWrite, sent)));
      outgoing.end(payload);
    });
  }
}

function networkError(error: Error, isWrite: boolean, sent: boolean): KvError {
  if (error instanceof KvError) return error;
  if (error.name === 'AbortError') {
    return new KvError('ABORTED', `the caller aborted${isWrite && sent ? '; the write may have been applied' : ''}`,
      { mayHaveBeenApplied: isWrite && sent });
  }
  const refused = (error as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  const mayHaveBeenApplied = isWrite && sent && !refused;
  return new KvError('UNAVAILABLE', `${error.message}${mayHaveBeenApplied ? '; the write may have been applied' : ''}`,
    { mayHaveBeenApplied, cause: error });
}

function isRefused(failure: KvError): boolean {
  return (failure.cause as NodeJS.ErrnoException | undefined)?.code === 'ECONNREFUSED';
}

/** An answer's error. Without a word on it (a proxy's 502, say), a write may have been applied. */
function errorOf(reply: HttpReply, isWrite: boolean): KvError {
  const { body } = reply;
  const code: KvErrorCode = isKvErrorCode(body.error) ? body.error : 'INTERNAL';
  const master = body.master as { nodeId?: unknown; endpoint?: unknown } | undefined;
  return new KvError(code, typeof body.message === 'string' ? body.message : `HTTP ${reply.status}`, {
    mayHaveBeenApplied: typeof body.mayHaveBeenApplied === 'boolean' ? body.mayHaveBeenApplied : isWrite,
    version: typeof body.version === 'number' ? body.version : undefined,
    master: typeof master?.nodeId === 'number'
      ? { nodeId: master.nodeId, endpoint: typeof master.endpoint === 'string' ? master.endpoint : undefined }
      : undefined,
  });
}

function checkedTimeout(timeoutMs: unknown): number {
  if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
    throw new KvError('BAD_REQUEST', `timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}`);
  }
  return timeoutMs;
}

function kvPath(key: string): string {
  if (LONE_SURROGATE.test(key)) throw new KvError('BAD_REQUEST', 'a key must be well-formed Unicode');
  return `/v1/kv/${encodeURIComponent(key)}`;
}

function normalizeEndpoint(endpoint: string): string {
  // Only an endpoint without a scheme gets http://: "ftp://host" is not the host "ftp".
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint) ? endpoint : `http://${endpoint}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new KvError('BAD_REQUEST', `not an endpoint: "${endpoint}" (expected http://host:port)`);
  }
  if (url.protocol !== 'http:') throw new KvError('BAD_REQUEST', `only http:// endpoints are supported: "${endpoint}"`);
  return `${url.protocol}//${url.host}`;
}
