/**
 * `GET /v1/watch?prefix=P[&cursor=TOKEN][&heartbeatMs=N]`: the changes of the keys that start with
 * P, as server-sent events (text/event-stream), from this node's execution of every group.
 * `?key=K[&fromVersion=N]` follows one key instead, from its change to version N + 1 (once this
 * node has executed version N; compacted if its history no longer holds that change).
 *
 *   event: start      id: CURSOR   data: {"nodeId", "cursor", "prefix"}      where the stream begins
 *   event: change     id: CURSOR   data: {"group", "key", "version", "value" | null, "deleted"}
 *   event: progress   id: CURSOR   data: {}    the cursor moved past changes of other keys
 *   : heartbeat                                 (a comment) nothing new, the connection lives
 *   : waiting                                   (a comment, each heartbeat) catching up with the cursor
 *   event: compacted  data: {"group", "cursor", "oldest", "reason"}   ends: list again, watch anew
 *   event: dropped    data: {"group", "cursor", "reason"}    ends: too slow; resume from `cursor`
 *   event: unavailable data: {"cursor", "reason"}   ends: this node is behind the cursor, or a snapshot
 *                                                  replaced a watched group's state here; try another
 *
 * The cursor (watch-cursor.ts) comes from `cursor=` or the `Last-Event-ID` header (an EventSource
 * reconnecting). A node that has not executed up to it waits for that (at most the request's
 * timeout, 5 s by default) rather than stream from an older point, which would show a resumed
 * client the past again (the time travel etcd's watch once had after a partition, etcd #15271).
 * Without a cursor the watch starts at this node's own position, which may trail the masters (see
 * docs/kv-service.md for how to combine it with a listing).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkQuery, type RequestTarget } from './http-request.js';
import { KvError, NOT_APPLIED } from './kv-error.js';
import type { KvService } from './kv-service.js';
import { formatCursor, parseCursor, type WatchPosition } from './watch-cursor.js';
import { controlEvent } from './watch-hub.js';

const DEFAULT_HEARTBEAT_MS = 10_000;
const MIN_HEARTBEAT_MS = 50;
const MAX_HEARTBEAT_MS = 60_000;
const MAX_PREFIX_BYTES = 4096;

export async function serveWatch(
  service: KvService, request: IncomingMessage, response: ServerResponse, url: RequestTarget, waitMs: number,
  headers: Readonly<Record<string, string>>,
): Promise<void> {
  checkQuery(url, ['prefix', 'key', 'fromVersion', 'cursor', 'heartbeatMs']);
  const key = url.searchParams.get('key');
  const prefix = url.searchParams.get('prefix') ?? '';
  if (key !== null && url.searchParams.has('prefix')) throw new KvError('BAD_REQUEST', 'name a prefix or a key, not both', NOT_APPLIED);
  if (Buffer.byteLength(key ?? prefix) > MAX_PREFIX_BYTES) {
    throw new KvError('KEY_TOO_LARGE', `a prefix or key is at most ${MAX_PREFIX_BYTES} bytes`, NOT_APPLIED);
  }
  const keyGroup = key === null ? undefined : service.groupOf(key);
  const fromVersion = fromVersionOf(url, key);
  const lastEventId = request.headers['last-event-id'];
  const token = url.searchParams.get('cursor') ?? (typeof lastEventId === 'string' ? lastEventId : undefined);
  const given = token === undefined || token === '' ? undefined : parseCursor(token, service.groups);
  const rawHeartbeat = url.searchParams.get('heartbeatMs');
  const heartbeatMs = rawHeartbeat === null ? DEFAULT_HEARTBEAT_MS : Number(rawHeartbeat);
  if (!/^\d{1,6}$/.test(rawHeartbeat ?? '0') || heartbeatMs < MIN_HEARTBEAT_MS || heartbeatMs > MAX_HEARTBEAT_MS) {
    throw new KvError('BAD_REQUEST', `heartbeatMs is an integer from ${MIN_HEARTBEAT_MS} to ${MAX_HEARTBEAT_MS}`,
      NOT_APPLIED);
  }
  const hub = service.watches;
  if (hub.full) {
    throw new KvError('OVERLOADED', `this node serves ${hub.maxWatchers} watches already; try another node`, NOT_APPLIED);
  }
  const abort = new AbortController();
  const closed = new Promise<void>((resolve) => response.once('close', () => { abort.abort(); resolve(); }));
  response.writeHead(200, {
    ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
  });
  // Headers go at once, so the client knows it is connected while this node catches up.
  response.flushHeaders();
  response.socket?.setNoDelay(true);
  // While this node catches up, a comment each heartbeat: the client takes silence for three
  // heartbeats as a dead node, and the wait may be longer than that.
  const waiting = setInterval(() => response.write(': waiting\n\n'), heartbeatMs);
  waiting.unref();
  try {
    return await streamWatch();
  } finally {
    clearInterval(waiting);
  }

  async function streamWatch(): Promise<void> {
    let cursor = given ?? hub.headCursor();
    if (given !== undefined && !await hub.reach(given, performance.now() + waitMs, abort.signal)) {
      if (!abort.signal.aborted) unavailable(response, given, `node ${service.nodeId} has not caught up with the cursor`);
      return;
    }
    if (given === undefined && key !== null && keyGroup !== undefined && fromVersion !== undefined) {
      // A key from a version: once this node has executed that version, start at the change after it.
      const versionHere = (): number => service.machine.read(keyGroup, key).version;
      await hub.waitUntil(() => versionHere() >= fromVersion, performance.now() + waitMs, abort.signal);
      if (abort.signal.aborted) return;
      const found = hub.keyCursor(key, keyGroup, fromVersion, versionHere());
      if (!Array.isArray(found)) {
        if (found.ok || found.reason === 'behind') {
          unavailable(response, cursor, `node ${service.nodeId} has not executed version ${fromVersion} of the key`);
        } else {
          compacted(response, service.nodeId, found.group, found.oldest, cursor);
        }
        return;
      }
      cursor = found;
    }
    if (hub.full) {
      unavailable(response, cursor, `this node serves ${hub.maxWatchers} watches already; try another node`);
      return;
    }
    const started = hub.start(key === null ? { prefix } : { key }, cursor, {
      write: (event) => response.write(event),
      end: () => response.end(),
      destroy: () => response.destroy(),
    }, keyGroup);
    if (!started.ok) {
      if (started.reason === 'behind') {
        unavailable(response, cursor, `node ${service.nodeId} has not caught up with the cursor`);
      } else {
        compacted(response, service.nodeId, started.group, started.oldest, cursor);
      }
      return;
    }
    clearInterval(waiting);
    const { watcher } = started;
    const startToken = formatCursor(cursor);
    response.write(controlEvent('start', startToken,
      { nodeId: service.nodeId, cursor: startToken, ...(key === null ? { prefix } : { key }) }));
    watcher.wake();
    const heartbeat = setInterval(() => watcher.heartbeat(), heartbeatMs);
    heartbeat.unref();
    response.on('drain', () => watcher.drained());
    await closed;
    clearInterval(heartbeat);
    watcher.close();
  }
}

function compacted(
  response: ServerResponse, nodeId: number, group: number, oldestPosition: WatchPosition,
  cursor: readonly WatchPosition[],
): void {
  const oldest = `${oldestPosition.instance}.${oldestPosition.index}`;
  response.end(controlEvent('compacted', undefined, {
    group, cursor: formatCursor(cursor), oldest,
    reason: `node ${nodeId} no longer holds group ${group}'s changes after the cursor (the oldest it can resume ` +
      `is ${oldest}): list again and start a new watch`,
  }));
}

/** `fromVersion=N` (with `key`, without a cursor): the key's changes to versions above N. */
function fromVersionOf(url: RequestTarget, key: string | null): number | undefined {
  const raw = url.searchParams.get('fromVersion');
  if (raw === null) return undefined;
  if (key === null) throw new KvError('BAD_REQUEST', 'fromVersion goes with key=K (one key\'s versions)', NOT_APPLIED);
  if (url.searchParams.has('cursor')) throw new KvError('BAD_REQUEST', 'name a cursor or a fromVersion, not both', NOT_APPLIED);
  if (!/^\d{1,15}$/.test(raw)) throw new KvError('BAD_REQUEST', `fromVersion is an integer of at least 0, not "${raw}"`, NOT_APPLIED);
  return Number(raw);
}

function unavailable(
  response: ServerResponse, cursor: readonly { instance: number; index: number }[], reason: string,
): void {
  response.end(controlEvent('unavailable', undefined, { cursor: formatCursor(cursor), reason }));
}
