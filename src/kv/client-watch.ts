/**
 * `KvClient.watch`: the changes of a prefix as an async iterator, over `GET /v1/watch`
 * (server-sent events, http-watch.ts), resumed on another node after a disconnect.
 *
 * It connects to the first endpoint, then the next ones in turn. The client keeps the cursor of
 * the last event (a change, or a progress event) and reconnects
 * from it: to the next endpoint when a node goes silent (no byte for three heartbeats), closes the
 * stream, refuses the connection or says it is behind the cursor (`unavailable`). The server
 * delivers exactly the changes after the cursor, so nothing is yielded twice or skipped. Each node
 * keeps its own history (a node restarted from a snapshot holds only what came after it), so a
 * node's `compacted` sends the client on to the next one. What the client cannot fix is thrown as
 * a `KvWatchError`: `compacted` (every endpoint it was given said it no longer holds the changes
 * after the cursor: list again, then watch anew), `dropped` (this watcher was too slow;
 * `watch(prefix, { cursor: error.cursor })` resumes, if the history still reaches back) and
 * `unavailable` (no node served the watch for `giveUpAfterMs`: each was unreachable, refused, or
 * behind the cursor; resume from `error.cursor` later).
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { mayCarryCredentials } from './cleartext-guard.js';
import { isKvErrorCode, KvError, NOT_APPLIED } from './kv-error.js';

export interface KvWatchOptions {
  /** Resume after this cursor (an event's `cursor`, or a `KvWatchError`'s); default: from now. */
  readonly cursor?: string;
  /** Ends the iteration. */
  readonly signal?: AbortSignal;
  /** How often the server proves the connection alive (default 5,000 ms); silence for 3 of them reconnects. */
  readonly heartbeatMs?: number;
  /**
   * Throw KvWatchError('unavailable') once no node has served the watch for this long (each one
   * unreachable, refusing, or behind the cursor); default 60,000 ms.
   */
  readonly giveUpAfterMs?: number;
}

export interface KvWatchKeyOptions extends Omit<KvWatchOptions, 'cursor'> {
  /** Start after this version of the key (its change to fromVersion + 1 comes first); default: from now. */
  readonly fromVersion?: number;
}

export interface KvWatchEvent {
  readonly group: number;
  readonly key: string;
  /** The key's version after the change. */
  readonly version: number;
  /** null: the change deleted the key. */
  readonly value: string | null;
  readonly deleted: boolean;
  /** Resume after this event with `watch(prefix, { cursor })`. */
  readonly cursor: string;
}

export class KvWatchError extends Error {
  constructor(
    readonly reason: 'compacted' | 'dropped' | 'unavailable',
    message: string,
    /** Where the watch was: for `dropped` and `unavailable`, resume from here. */
    readonly cursor: string | undefined,
  ) {
    super(message);
    this.name = 'KvWatchError';
  }
}

/** How a watch reaches the nodes: the client's HTTPS agent (its CA and certificate) and token. */
export interface KvWatchConnection {
  readonly secureAgent?: HttpsAgent;
  /** The Authorization header, sent only where a token may go (cleartext-guard.ts). */
  readonly authorization?: string;
}

const MAX_EVENT_BYTES = 8 * 1024 * 1024;
const MAX_BACKOFF_MS = 1_000;
const DEFAULT_GIVE_UP_AFTER_MS = 60_000;

interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: string;
}

/** A watch in progress: iterate it; `cursor` is where it is, `close` ends it. */
export class KvWatch implements AsyncIterable<KvWatchEvent> {
  private current: string | undefined;
  private readonly abort = new AbortController();
  private readonly endpoints: readonly string[];
  /** A prefix, or one key (optionally from a version: used until the first cursor is known). */
  private readonly target: { readonly prefix: string } | { readonly key: string; readonly fromVersion?: number };
  private readonly heartbeatMs: number;
  private readonly giveUpAfterMs: number;
  /** Connections made (the first one included), for tests and diagnostics. */
  connections = 0;
  /** The node serving the watch now. */
  nodeId: number | undefined;

  private readonly connection: KvWatchConnection;

  constructor(
    endpoints: readonly string[], target: KvWatch['target'], options: KvWatchOptions = {},
    connection: KvWatchConnection = {},
  ) {
    this.endpoints = endpoints;
    this.connection = connection;
    this.target = target;
    const fromVersion = 'key' in target ? target.fromVersion : undefined;
    if (fromVersion !== undefined && (!Number.isSafeInteger(fromVersion) || fromVersion < 0)) {
      throw new KvError('BAD_REQUEST', 'fromVersion is an integer of at least 0', NOT_APPLIED);
    }
    this.current = options.cursor;
    this.heartbeatMs = options.heartbeatMs ?? 5_000;
    if (!Number.isInteger(this.heartbeatMs) || this.heartbeatMs < 50 || this.heartbeatMs > 60_000) {
      throw new KvError('BAD_REQUEST', 'heartbeatMs is an integer from 50 to 60,000', NOT_APPLIED);
    }
    this.giveUpAfterMs = options.giveUpAfterMs ?? DEFAULT_GIVE_UP_AFTER_MS;
    if (!Number.isSafeInteger(this.giveUpAfterMs) || this.giveUpAfterMs < 0) {
      throw new KvError('BAD_REQUEST', 'giveUpAfterMs is an integer of at least 0', NOT_APPLIED);
    }
    options.signal?.addEventListener('abort', () => this.abort.abort(), { once: true });
    if (options.signal?.aborted === true) this.abort.abort();
  }

  /** The cursor after the last event delivered (undefined before the first connection). */
  get cursor(): string | undefined {
    return this.current;
  }

  close(): void {
    this.abort.abort();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<KvWatchEvent> {
    // The first endpoint first, then the next ones in turn (shuffle the list to spread watchers).
    let next = 0;
    let failures = 0;
    // Since when no node has served the watch (reset by each `start`), for giveUpAfterMs.
    let unservedSince = performance.now();
    let lastFailure = '';
    // The endpoints that said `compacted` for the cursor `compactedCursor`: final once all did.
    const compactedAt = new Set<string>();
    let compactedCursor: string | undefined;
    const distinctEndpoints = new Set(this.endpoints).size;
    while (!this.abort.signal.aborted) {
      const endpoint = this.endpoints[next % this.endpoints.length] as string;
      next++;
      let started = false;
      try {
        for await (const event of this.connect(endpoint)) {
          if (event.event === 'start') {
            started = true;
            failures = 0;
            this.current = event.id;
            this.nodeId = (JSON.parse(event.data) as { nodeId?: number }).nodeId;
          } else if (event.event === 'change') {
            const data = JSON.parse(event.data) as Omit<KvWatchEvent, 'cursor'>;
            this.current = event.id;
            yield { ...data, cursor: event.id as string };
          } else if (event.event === 'progress') {
            this.current = event.id;
          } else if (event.event === 'dropped') {
            const data = JSON.parse(event.data) as { reason?: string; cursor?: string };
            throw new KvWatchError('dropped', `dropped: ${data.reason ?? ''}`, this.current ?? data.cursor);
          } else if (event.event === 'compacted') {
            const data = JSON.parse(event.data) as { reason?: string; cursor?: string };
            if (compactedCursor !== this.current) compactedAt.clear();
            compactedCursor = this.current;
            compactedAt.add(endpoint);
            lastFailure = `compacted: ${data.reason ?? ''}`;
            if (compactedAt.size >= distinctEndpoints) {
              throw new KvWatchError('compacted', `compacted: none of the ${distinctEndpoints} endpoint(s) holds the ` +
                `changes after the cursor any longer; list again and start a new watch (last: ${data.reason ?? ''})`,
              this.current ?? data.cursor);
            }
            break;
          } else if (event.event === 'unavailable') {
            lastFailure = `unavailable: ${(JSON.parse(event.data) as { reason?: string }).reason ?? ''}`;
            break;
          }
        }
      } catch (error) {
        if (error instanceof KvWatchError || (error instanceof KvError && error.code === 'BAD_REQUEST')) throw error;
        if (error instanceof KvError && !['UNAVAILABLE', 'OVERLOADED', 'NOT_MASTER', 'NO_MASTER', 'TIMEOUT', 'INTERNAL']
          .includes(error.code)) throw error;
        // Anything else is this connection's failure: on to the next node.
        lastFailure = `${endpoint}: ${error instanceof Error ? error.message : String(error)}`;
      }
      if (this.abort.signal.aborted) return;
      if (started) unservedSince = performance.now();
      else failures++;
      const left = unservedSince + this.giveUpAfterMs - performance.now();
      if (left <= 0) {
        throw new KvWatchError('unavailable', `unavailable: no node served the watch for ${this.giveUpAfterMs} ms ` +
          `(each unreachable, refusing, or behind the cursor; last: ${lastFailure}); resume from the cursor later`,
        this.current);
      }
      // Once every node failed in a row, wait a little before going round again.
      if (failures >= this.endpoints.length) {
        await sleep(Math.min(MAX_BACKOFF_MS, left, 50 * 2 ** (failures - this.endpoints.length)), undefined,
          { signal: this.abort.signal }).catch(() => {});
      }
    }
  }

  /** One connection's events, until it ends or fails. */
  private async *connect(endpoint: string): AsyncGenerator<SseEvent> {
    this.connections++;
    const query = new URLSearchParams('key' in this.target ? { key: this.target.key } : { prefix: this.target.prefix });
    query.set('heartbeatMs', String(this.heartbeatMs));
    if (this.current !== undefined) query.set('cursor', this.current);
    else if ('key' in this.target && this.target.fromVersion !== undefined) {
      query.set('fromVersion', String(this.target.fromVersion));
    }
    const { authorization, secureAgent } = this.connection;
    if (authorization !== undefined && !mayCarryCredentials(endpoint)) {
      throw new KvError('BAD_REQUEST', `not sending a token over plain HTTP to ${endpoint}: use https://`, NOT_APPLIED);
    }
    const headers = { accept: 'text/event-stream', ...(authorization === undefined ? {} : { authorization }) };
    const secure = endpoint.startsWith('https:');
    const incoming = await new Promise<IncomingMessage>((resolve, reject) => {
      const url = new URL(`/v1/watch?${query.toString()}`, endpoint);
      const outgoing = secure
        ? httpsRequest(url, { method: 'GET', signal: this.abort.signal, headers, agent: secureAgent }, resolve)
        : httpRequest(url, { method: 'GET', signal: this.abort.signal, headers }, resolve);
      outgoing.setTimeout(3 * this.heartbeatMs, () => outgoing.destroy(new KvError('TIMEOUT', `${endpoint} is silent`)));
      outgoing.once('error', (error) => reject(error instanceof KvError ? error
        : new KvError('UNAVAILABLE', error.message, { ...NOT_APPLIED, cause: error })));
      outgoing.end();
    });
    try {
      if (incoming.statusCode !== 200) {
        const body = await readAll(incoming);
        let parsed: { error?: unknown; message?: unknown } = {};
        try {
          parsed = JSON.parse(body) as typeof parsed;
        } catch {
          // Not JSON: UNAVAILABLE below.
        }
        throw new KvError(isKvErrorCode(parsed.error) ? parsed.error : 'UNAVAILABLE',
          typeof parsed.message === 'string' ? parsed.message : `${endpoint} answered ${incoming.statusCode}`, NOT_APPLIED);
      }
      // A node that stops sending (frozen, cut off) shows as silence: the socket's idle timeout.
      incoming.socket.setTimeout(3 * this.heartbeatMs, () => incoming.destroy(new Error(`${endpoint} went silent`)));
      let buffer = '';
      incoming.setEncoding('utf8');
      for await (const chunk of incoming as AsyncIterable<string>) {
        buffer += chunk;
        if (buffer.length > MAX_EVENT_BYTES) throw new KvError('UNAVAILABLE', `${endpoint} sent an event too large`);
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = parseEvent(block);
          if (event !== undefined) yield event;
        }
      }
    } finally {
      incoming.destroy();
    }
  }
}

function parseEvent(block: string): SseEvent | undefined {
  let event = 'message';
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':') || line === '') continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'id') id = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0 && id === undefined) return undefined;
  return { event, id, data: data.join('\n') };
}

async function readAll(incoming: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of incoming as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 1024 * 1024) break;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}
