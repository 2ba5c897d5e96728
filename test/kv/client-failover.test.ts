// KvClient failover against scripted servers: a silent node (frozen, cut off) costs a read one
// attempt timeout and then it moves on; a write sent to a silent node is reported with an unknown
// outcome and never sent again, while the next call goes elsewhere; NO_MASTER, NOT_MASTER and a
// silent master all lead the client to ask the other nodes, and the master it caches follows them.
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { KvClient } from '../../src/kv/client.js';
import {
  answer, closeFakeServers, failure, fakeServer, kvError, untouched, type FakeServer, type Seen,
} from './fake-servers.js';

const clients: KvClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await closeFakeServers();
});

const ATTEMPT_MS = 200;
/** The client's longest pause between attempts (its backoff's last step). */
const LONGEST_PAUSE_MS = 200;

/** Without sessions: the fake servers speak the protocol without them, which is what these tests check. */
function clientOf(endpoints: readonly string[]): KvClient {
  const client = new KvClient({ endpoints, timeoutMs: 5_000, attemptTimeoutMs: ATTEMPT_MS, sessions: false });
  clients.push(client);
  return client;
}

/** The headers of a node that serves group 0 of 1 as master, at `endpoint`. */
function masterHeaders(endpoint: string): Record<string, string> {
  return { 'x-multipaxos-groups': '1', 'x-multipaxos-group': '0', 'x-multipaxos-endpoint': endpoint };
}

/** A master of the single group: answers every KV request, writes with increasing versions. */
async function servingNode(): Promise<FakeServer> {
  let version = 0;
  const node: FakeServer = await fakeServer((request, response) => {
    if (!request.url.startsWith('/v1/kv/')) {
      answer(response, 200, {});
      return;
    }
    if (request.method !== 'GET') version++;
    answer(response, 200, request.method === 'GET' ? { key: 'k', value: 'v', version } : { key: 'k', version },
      masterHeaders(node.endpoint));
  });
  return node;
}

/** A node that answers every KV request with `code` (NOT_MASTER naming `master` if given), /status with 200. */
async function refusingNode(code: string, master?: () => string): Promise<FakeServer> {
  return await fakeServer((request: Seen, response: ServerResponse) => {
    if (!request.url.startsWith('/v1/kv/')) answer(response, 200, {});
    else answer(response, 503, failure(code, master === undefined ? {} : { master: { nodeId: 9, endpoint: master() } }),
      { 'x-multipaxos-groups': '1' });
  });
}

test('a silent node costs a read one attempt timeout, then the next node answers', async () => {
  const silent = await fakeServer(() => {});
  const serving = await servingNode();
  const client = clientOf([silent.endpoint, serving.endpoint]);
  const began = performance.now();
  assert.deepEqual(await client.get('k'), { key: 'k', value: 'v', version: 0 });
  const elapsed = performance.now() - began;
  assert.ok(elapsed >= ATTEMPT_MS - 20 && elapsed < ATTEMPT_MS + 1_000, `answered after ${Math.round(elapsed)} ms`);
  assert.deepEqual([silent.kvRequests().length, serving.kvRequests().length], [1, 1]);
});

test('a write sent to a silent node fails as maybe applied, is never sent again, and the next call goes elsewhere',
  async () => {
    const silent = await fakeServer(() => {});
    const serving = await servingNode();
    const client = clientOf([silent.endpoint, serving.endpoint]);
    const began = performance.now();
    for (const write of [(fresh: KvClient) => fresh.put('k', 'v'), (fresh: KvClient) => fresh.delete('k')]) {
      // A fresh client each time, so that each write goes to the silent node first.
      await assert.rejects(write(clientOf([silent.endpoint, serving.endpoint])),
        kvError('TIMEOUT', (error) => error.mayHaveBeenApplied));
    }
    assert.ok(performance.now() - began < 2_000, 'each failed after the attempt timeout, not the call deadline');
    assert.deepEqual([silent.kvRequests().length, serving.kvRequests().length], [2, 0],
      'each write was sent exactly once, to the silent node');

    // The client that saw the silence sends its next writes to the other node at once.
    await assert.rejects(client.put('k', 'one'), kvError('TIMEOUT', (error) => error.mayHaveBeenApplied));
    const next = performance.now();
    assert.deepEqual(await client.put('k', 'two'), { key: 'k', version: 1 });
    assert.deepEqual(await client.put('k', 'three'), { key: 'k', version: 2 });
    assert.ok(performance.now() - next < ATTEMPT_MS, 'no attempt waited on the silent node');
    assert.equal(silent.kvRequests().length, 3, 'the silent node got each failed write once, and nothing after');
    assert.deepEqual(serving.kvRequests().map((seen) => seen.body), ['{"value":"two"}', '{"value":"three"}']);
  });

test('a write whose connection is refused is sent to the next node (it never left)', async () => {
  const closed = await fakeServer(() => {});
  const endpoint = closed.endpoint;
  await closeFakeServers();
  const serving = await servingNode();
  assert.deepEqual(await clientOf([endpoint, serving.endpoint]).put('k', 'v'), { key: 'k', version: 1 });
  assert.equal(serving.kvRequests().length, 1);
});

test('NO_MASTER from the cached master (cut off from the others) sends the client to the others', async () => {
  let isolated = false;
  const old: FakeServer = await fakeServer((request, response) => {
    if (isolated) answer(response, 503, failure('NO_MASTER'), { 'x-multipaxos-groups': '1' });
    else answer(response, 200, { key: 'k', version: 1 }, masterHeaders(old.endpoint));
  });
  const fresh = await servingNode();
  const other = await refusingNode('NOT_MASTER', () => fresh.endpoint);
  const client = clientOf([old.endpoint, other.endpoint, fresh.endpoint]);
  assert.deepEqual(await client.put('k', 'v'), { key: 'k', version: 1 });
  assert.deepEqual(await client.put('k', 'v'), { key: 'k', version: 1 }, 'the old master is cached');
  isolated = true;
  assert.deepEqual(await client.put('k', 'w'), { key: 'k', version: 1 });
  assert.deepEqual([old.kvRequests().length, fresh.kvRequests().length], [3, 1]);
  // The new master is cached now: the next calls go straight there.
  const asked = other.kvRequests().length;
  await client.put('k', 'x');
  await client.get('k');
  assert.deepEqual([old.kvRequests().length, other.kvRequests().length, fresh.kvRequests().length], [3, asked, 3]);
});

test('NOT_MASTER (503) updates the cached master, for later calls too', async () => {
  const master = await servingNode();
  const follower = await refusingNode('NOT_MASTER', () => master.endpoint);
  const client = clientOf([follower.endpoint]);
  await client.put('k', 'v');
  await client.get('k');
  await client.delete('k');
  assert.deepEqual([follower.kvRequests().length, master.kvRequests().length], [1, 3]);
});

test('a NOT_MASTER naming a master that went silent is not followed: the client asks the other nodes', async () => {
  const silent = await fakeServer(() => {});
  let named = silent.endpoint;
  const fresh = await servingNode();
  // Both other nodes still name the silent master (its lease has not run out yet) for a while.
  const first = await refusingNode('NOT_MASTER', () => named);
  const second = await refusingNode('NOT_MASTER', () => named);
  const client = clientOf([silent.endpoint, first.endpoint, second.endpoint]);
  const reading = client.get('k');
  setTimeout(() => { named = fresh.endpoint; }, 3 * ATTEMPT_MS);
  assert.deepEqual(await reading, { key: 'k', value: 'v', version: 0 });
  assert.equal(silent.kvRequests().length, 1, 'after its silence, the master they named was not asked again');
  assert.ok(first.kvRequests().length + second.kvRequests().length >= 2, 'the others were asked who the master is');
  assert.equal(fresh.kvRequests().length, 1);
});

test('a silent read on a single endpoint keeps trying until the deadline, one attempt timeout at a time', async () => {
  const silent = await fakeServer(() => {});
  const client = clientOf([silent.endpoint]);
  const began = performance.now();
  await assert.rejects(client.get('k', { timeoutMs: 5 * ATTEMPT_MS }),
    kvError('TIMEOUT', (error) => !error.mayHaveBeenApplied));
  const elapsed = performance.now() - began;
  // It stops once the next pause would end past the deadline: at most the longest pause early.
  assert.ok(elapsed >= 5 * ATTEMPT_MS - LONGEST_PAUSE_MS - 20 && elapsed < 5 * ATTEMPT_MS + 1_000,
    `gave up after ${Math.round(elapsed)} ms`);
  assert.ok(silent.kvRequests().length >= 3, `${silent.kvRequests().length} attempts`);
});

test('attemptTimeoutMs must be a positive number', () => {
  for (const attemptTimeoutMs of [Number.NaN, 0, -5, Infinity]) {
    assert.throws(() => new KvClient({ endpoints: ['http://127.0.0.1:1'], attemptTimeoutMs }), kvError('BAD_REQUEST'));
  }
});

test('an applied write whose answer names an endpoint the client cannot use still succeeds', async () => {
  // A proxy, or a node advertising an address of another scheme: learning must not fail the call.
  const node = await fakeServer((_request, response) => {
    answer(response, 200, { key: 'k', version: 1 }, masterHeaders('https://proxy.example'));
  });
  const client = clientOf([node.endpoint]);
  assert.deepEqual(await client.put('k', 'v'), { key: 'k', version: 1 });
  assert.equal(node.seen.length, 1, 'sent once');
});

test('a write answered as maybe applied is never sent again, whatever the code says', async () => {
  const first = await fakeServer((_request, response) => {
    answer(response, 503, failure('NO_MASTER', { mayHaveBeenApplied: true }));
  });
  const second = await untouched();
  const client = clientOf([first.endpoint, second.endpoint]);
  await assert.rejects(client.put('k', 'v'), kvError('NO_MASTER', (error) => error.mayHaveBeenApplied));
  assert.equal(first.seen.length, 1);
  assert.equal(second.seen.length, 0);
});
