// GET /v1/watch and KvClient.watch on a real in-process cluster (3 nodes over TCP, 2 groups, a small
// history per group so that compaction and slow watchers show quickly): the SSE format, every change
// of the prefix in version order, resuming on another node from an event's cursor with nothing
// repeated or skipped, a node behind the cursor refusing to stream the past, a compacted cursor, a
// slow watcher dropped with an event, the watcher cap and bad requests.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import { KvWatchError, type KvWatch, type KvWatchEvent } from '../../src/kv/client-watch.js';
import { formatCursor, parseCursor } from '../../src/kv/watch-cursor.js';
import { httpCall, jsonOf, metricValue } from './http-helpers.js';
import { startKvCluster, type KvTestCluster } from './kv-fixtures.js';
import { checkWatcher, type WrittenValue } from '../support/watch-checker.js';

const HISTORY = { maxChanges: 40, maxBytes: 2 * 1024 * 1024 };
const MAX_WATCHERS = 12;
const cluster: KvTestCluster = await startKvCluster({
  groups: 2, watch: { history: HISTORY, maxWatchers: MAX_WATCHERS },
});
const client = new KvClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
after(async () => {
  client.close();
  await cluster.stop();
});

/** A raw SSE connection: its text so far, and a way to stop reading (a slow client) or close it. */
interface RawWatch {
  readonly response: IncomingMessage;
  text(): string;
  ended: Promise<void>;
  close(): void;
}

async function rawWatch(
  endpoint: string, query: string, options: { paused?: boolean; headers?: Record<string, string> } = {},
): Promise<RawWatch> {
  const { hostname, port } = new URL(endpoint);
  let outgoing: ClientRequest | undefined;
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    outgoing = request({ hostname, port, path: `/v1/watch?${query}`, agent: false, headers: options.headers }, resolve);
    outgoing.once('error', reject);
    outgoing.end();
  });
  const chunks: Buffer[] = [];
  const ended = new Promise<void>((resolve) => {
    response.once('end', resolve);
    response.once('close', resolve);
    response.once('error', () => resolve());
  });
  response.on('data', (chunk: Buffer) => chunks.push(chunk));
  if (options.paused === true) response.pause();
  return {
    response, ended, text: () => Buffer.concat(chunks).toString('utf8'),
    close: () => outgoing?.destroy(),
  };
}

async function until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(10);
  }
}

/** Consume a KvWatch in the background, keeping what it yields and how it ended. */
function consume(watch: KvWatch): { events: KvWatchEvent[]; done: Promise<unknown> } {
  const events: KvWatchEvent[] = [];
  const done = (async () => {
    for await (const event of watch) events.push(event);
  })().then(() => undefined, (error: unknown) => error);
  return { events, done };
}

test('the SSE stream: a start event with the cursor, then each change with its cursor as id', async () => {
  await cluster.serving(0);
  await cluster.serving(1);
  const raw = await rawWatch(cluster.endpoints[1] as string, 'prefix=sse/');
  assert.equal(raw.response.statusCode, 200);
  assert.match(String(raw.response.headers['content-type']), /^text\/event-stream/);
  await until(() => raw.text().includes('event: start'));
  await client.put('sse/a', 'one');
  await client.put('other', 'x');
  await client.delete('sse/a');
  await until(() => (raw.text().match(/event: change/g) ?? []).length === 2);
  raw.close();
  const blocks = raw.text().split('\n\n').filter((block) => block.startsWith('event:'));
  assert.match(blocks[0] as string, /^event: start\nid: 0:-?\d+\.\d+,1:-?\d+\.\d+\ndata: \{"nodeId":2,/);
  const changes = blocks.filter((block) => block.startsWith('event: change')).map((block) => {
    const [, id, data] = /^event: change\nid: (.*)\ndata: (.*)$/.exec(block) as RegExpExecArray;
    return { id, data: JSON.parse(data as string) as Record<string, unknown> };
  });
  const group = cluster.services[0]?.groupOf('sse/a');
  assert.deepEqual(changes.map(({ data }) => data), [
    { group, key: 'sse/a', version: 1, value: 'one', deleted: false },
    { group, key: 'sse/a', version: 2, value: null, deleted: true },
  ]);
  assert.equal(parseCursor(changes[1]?.id as string, 2).length, 2);
});

test('KvClient.watch: every write of the prefix in version order; resumed on another node from a cursor', async (t) => {
  const watch = client.watch('cw/', { heartbeatMs: 200 });
  t.after(() => watch.close());
  const seen = consume(watch);
  await until(() => watch.cursor !== undefined);
  const writes: WrittenValue[] = [];
  for (let i = 0; i < 30; i++) {
    const key = `cw/k${i % 5}`;
    const value = `v${i}`;
    const { version } = await client.put(key, value);
    writes.push({ key, value, version });
  }
  await until(() => seen.events.length === 30);
  assert.deepEqual(checkWatcher('cw/', writes, seen.events), []);
  // Resume from the 10th event's cursor on each node in turn: exactly the 20 after it (each group's
  // in its log order; the two groups interleave as they come).
  const cursor = seen.events[9]?.cursor as string;
  const perGroup = (events: readonly KvWatchEvent[]): string[][] =>
    [0, 1].map((group) => events.filter((event) => event.group === group).map(({ key, version }) => `${key}@${version}`));
  for (const endpoint of cluster.endpoints) {
    const one = new KvClient({ endpoints: [endpoint] });
    const resumed = one.watch('cw/', { cursor });
    t.after(() => { resumed.close(); one.close(); });
    const rest = consume(resumed);
    await until(() => rest.events.length >= 20);
    await sleep(100);
    resumed.close();
    assert.equal(resumed.nodeId, cluster.endpoints.indexOf(endpoint) + 1);
    assert.deepEqual(perGroup(rest.events), perGroup(seen.events.slice(10)), endpoint);
  }
  watch.close();
  await seen.done;
});

test('a node that has not executed up to the cursor waits, then says unavailable, never streams the past', async () => {
  const head = cluster.services[0]?.watches.headCursor() ?? [];
  const ahead = formatCursor(head.map(({ instance }) => ({ instance: instance + 1_000, index: 0 })));
  const raw = await rawWatch(cluster.endpoints[0] as string, `cursor=${ahead}&heartbeatMs=50`, {
    headers: { 'x-multipaxos-timeout-ms': '300' },
  });
  await client.put('behind/x', 'y'); // executed by every node: still behind the cursor
  await raw.ended;
  assert.doesNotMatch(raw.text(), /event: change/);
  // Not silent while it waits: a client's silence timeout (three heartbeats) is shorter than the wait.
  assert.ok((raw.text().match(/^: waiting\n\n/gm) ?? []).length >= 2, raw.text());
  assert.match(raw.text(),
    /event: unavailable\ndata: \{"cursor":.*"reason":"node 1 has not caught up with the cursor"/);
});

test('a cursor older than the history is compacted: an event, and KvWatchError for the client', async () => {
  const watch = client.watch('old/', { heartbeatMs: 200 });
  const seen = consume(watch);
  await until(() => watch.cursor !== undefined);
  await client.put('old/a', '1');
  await until(() => seen.events.length === 1);
  watch.close();
  await seen.done;
  const cursor = seen.events[0]?.cursor as string;
  // More changes than each group's history holds.
  await Promise.all(Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; i < 30; i++) await client.put(`filler/${w}`, `${i}`);
  }));
  const raw = await rawWatch(cluster.endpoints[2] as string, `prefix=old/&cursor=${cursor}`);
  await raw.ended;
  assert.match(raw.text(),
    /^event: compacted\ndata: \{"group":\d,"cursor":".*","oldest":"\d+\.\d+","reason":".*list again/);
  const again = consume(client.watch('old/', { cursor }));
  // It ends by itself (compacted is final): no close needed.
  const error = await again.done;
  assert.ok(error instanceof KvWatchError && error.reason === 'compacted', String(error));
});

test('a watcher that stops reading is dropped with a final event once the history moves past it', async () => {
  const endpoint = cluster.endpoints[0] as string;
  const slow = await rawWatch(endpoint, 'prefix=big/', { paused: true });
  const big = 'x'.repeat(200 * 1024);
  // 2 MiB of history per group, socket buffers of a few MiB: 60 values of 200 KiB overflow both.
  for (let i = 0; i < 60; i++) await client.put(`big/${i % 3}`, `${i}${big}`);
  await until(() => (cluster.services[0]?.watches.dropped ?? 0) >= 1);
  slow.response.resume();
  await slow.ended;
  const blocks = slow.text().split('\n\n');
  const last = blocks.filter((block) => block.startsWith('event:')).pop() as string;
  assert.match(last, /^event: dropped\ndata: \{"group":\d,"reason":"this watcher fell too far behind.*"cursor":"0:/);
  assert.ok(blocks.filter((block) => block.startsWith('event: change')).length < 60);
  const metrics = (await httpCall(endpoint, 'GET', '/metrics')).text;
  assert.ok((metricValue(metrics, 'multipaxos_kv_watches_ended_total', { reason: 'dropped' }) ?? 0) >= 1);
});

test('the watcher cap answers OVERLOADED; bad requests are refused', async () => {
  const endpoint = cluster.endpoints[1] as string;
  await until(() => (cluster.services[1]?.watches.watching ?? 1) === 0);
  const open = await Promise.all(Array.from({ length: MAX_WATCHERS }, () => rawWatch(endpoint, '')));
  await until(() => cluster.services[1]?.watches.watching === MAX_WATCHERS);
  const refused = await httpCall(endpoint, 'GET', '/v1/watch');
  assert.equal(refused.status, 429);
  assert.equal(jsonOf(refused).error, 'OVERLOADED');
  for (const raw of open) raw.close();
  for (const [path, code] of [['/v1/watch?cursor=1:2.0', 'BAD_REQUEST'], ['/v1/watch?heartbeatMs=5', 'BAD_REQUEST'],
    ['/v1/watch?nope=1', 'BAD_REQUEST']] as const) {
    const answer = await httpCall(endpoint, 'GET', path);
    assert.equal(answer.status, 400, path);
    assert.equal(jsonOf(answer).error, code, path);
  }
  const post = await httpCall(endpoint, 'POST', '/v1/watch');
  assert.equal(post.status, 405);
  assert.equal(post.headers.allow, 'GET');
});

test('one key from a version: its later changes; a version not executed yet waits; one evicted is compacted', async () => {
  for (let i = 1; i <= 5; i++) await client.put('fv/a', `v${i}`);
  await client.put('fv/ab', 'another key with the same start');
  const fromTwo = client.watchKey('fv/a', { fromVersion: 2, heartbeatMs: 200 });
  const seen = consume(fromTwo);
  await until(() => seen.events.length === 3);
  await client.put('fv/a', 'v6');
  await until(() => seen.events.length === 4);
  fromTwo.close();
  assert.equal(await seen.done, undefined);
  assert.deepEqual(seen.events.map(({ key, version, value }) => `${key}@${version}=${value}`),
    ['fv/a@3=v3', 'fv/a@4=v4', 'fv/a@5=v5', 'fv/a@6=v6']);

  const ahead = await rawWatch(cluster.endpoints[2] as string, 'key=fv/a&fromVersion=100', {
    headers: { 'x-multipaxos-timeout-ms': '300' },
  });
  await ahead.ended;
  assert.match(ahead.text(), /event: unavailable\ndata: .*has not executed version 100 of the key/);

  await client.put('fvc/a', 'first');
  await Promise.all(Array.from({ length: 4 }, async (_, w) => {
    for (let i = 0; i < 25; i++) await client.put(`filler/${w}`, `${i}`);
  }));
  const evicted = consume(client.watchKey('fvc/a', { fromVersion: 0 }));
  const error = await evicted.done;
  assert.ok(error instanceof KvWatchError && error.reason === 'compacted', String(error));

  for (const path of ['/v1/watch?fromVersion=1', '/v1/watch?key=a&prefix=b', '/v1/watch?key=a&fromVersion=x',
    '/v1/watch?key=a&fromVersion=1&cursor=0:1.0,1:1.0']) {
    const answer = await httpCall(cluster.endpoints[0] as string, 'GET', path);
    assert.equal(answer.status, 400, path);
  }
});
