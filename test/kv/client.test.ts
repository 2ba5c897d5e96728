// KvClient against a real 3-node cluster (versions, following the master, a master that steps
// down) and against scripted HTTP servers, to pin down exactly what it retries and what it does not.
import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import type { KvService } from '../../src/kv/kv-service.js';
import { freePort } from '../support/local.js';
import { answer, closeFakeServers, failure, fakeServer, kvError, untouched } from './fake-servers.js';
import { httpCall, metricValue, waitFor } from './http-helpers.js';
import { keyInGroup, startKvCluster, type KvTestCluster } from './kv-fixtures.js';

// Clients and fake servers a test opened, closed after it whatever happened.
const clients: KvClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await closeFakeServers();
});

// One cluster for the tests that need one, stopped when their suite ends: before the file's own
// hooks (such as the removal of the data directories) run.
const cluster: KvTestCluster = await startKvCluster({ groups: 2 });

/**
 * A client of the real cluster (sessions on, the default), or of fake servers: those speak the
 * protocol without sessions (they have no POST /v1/sessions), which is what their tests check.
 */
function clientOf(endpoints: readonly string[], timeoutMs?: number): KvClient {
  const client = new KvClient({ endpoints, timeoutMs });
  clients.push(client);
  return client;
}

function sessionlessClientOf(endpoints: readonly string[], timeoutMs?: number): KvClient {
  const client = new KvClient({ endpoints, timeoutMs, sessions: false });
  clients.push(client);
  return client;
}

function endpointOf(target: KvTestCluster, service: KvService): string {
  return target.endpoints[service.nodeId - 1] as string;
}

/** The group's serving master, once every node knows its endpoint (so any node forwards to it). */
async function servingMaster(target: KvTestCluster, group: number): Promise<KvService> {
  const master = await target.serving(group);
  await waitFor(`every node to learn the master of group ${group}`, () =>
    target.services.every((service) => service.masterHint(group)?.endpoint === endpointOf(target, master)));
  return master;
}

function forwardedTotal(target: KvTestCluster): number {
  return target.servers.reduce((sum, server) => sum + server.requests.forwarded, 0);
}

describe('KvClient on a real cluster', () => {
  after(async () => {
    await cluster.stop();
  });

  test('put, get, delete and compare-and-set on a real cluster', async () => {
    const master = await servingMaster(cluster, 0);
    await servingMaster(cluster, 1);
    const client = clientOf(cluster.endpoints);
    const key = keyInGroup(master, 0, 'client');
    assert.deepEqual(await client.put(key, 'one'), { key, version: 1 });
    assert.deepEqual(await client.get(key), { key, value: 'one', version: 1 });
    assert.deepEqual(await client.put(key, 'two', { version: 1 }), { key, version: 2 });
    await assert.rejects(client.put(key, 'lost', { version: 1 }),
      kvError('VERSION_CONFLICT', (error) => error.version === 2 && !error.mayHaveBeenApplied));
    await assert.rejects(client.delete(key, { version: 1 }), kvError('VERSION_CONFLICT', (error) => error.version === 2));
    assert.deepEqual(await client.get(key), { key, value: 'two', version: 2 }, 'the refused writes changed nothing');
    assert.deepEqual(await client.delete(key, { version: 2 }), { key, version: 3, deleted: true });
    assert.deepEqual(await client.get(key), { key, value: null, version: 3 }, 'a deleted key keeps its version');
    assert.deepEqual(await client.delete(key), { key, version: 3, deleted: false }, 'deleting it again changes nothing');
    assert.deepEqual(await client.delete(key, { version: 3 }), { key, version: 3, deleted: false });
    await assert.rejects(client.delete(key, { version: 2 }), kvError('VERSION_CONFLICT', (error) => error.version === 3));
    assert.deepEqual(await client.put(key, 'three', { version: 3 }), { key, version: 4 });
    const status = await client.status(endpointOf(cluster, master));
    assert.equal(status.nodeId, master.nodeId);
    assert.equal((status.groups as { isMaster: boolean }[])[0]?.isMaster, true);

    const missing = keyInGroup(master, 1, 'client-missing');
    assert.deepEqual(await client.get(missing), { key: missing, value: null, version: 0 });
    assert.deepEqual(await client.delete(missing), { key: missing, version: 0, deleted: false }, 'no tombstone for a never-written key');
    assert.deepEqual(await client.put(missing, '', { version: 0 }), { key: missing, version: 1 });
    assert.deepEqual(await client.get(missing), { key: missing, value: '', version: 1 });
    await waitFor('a stale read to see the write', async () =>
      (await client.get(key, { stale: true })).value === 'three');

    await assert.rejects(client.put('', 'x'), kvError('BAD_REQUEST'));
    await assert.rejects(client.get(''), kvError('BAD_REQUEST'));
    await assert.rejects(client.put('k'.repeat(4097), 'x'), kvError('KEY_TOO_LARGE'));
    await assert.rejects(client.put(key, 'v'.repeat(1024 * 1024 + 1)), kvError('VALUE_TOO_LARGE'));
  });

  test('keys that need percent-encoding, and the dot keys, round-trip through the client', async () => {
    await servingMaster(cluster, 0);
    await servingMaster(cluster, 1);
    const client = clientOf(cluster.endpoints);
    const keys = [
      'a/b', 'with space', '100%', '%2F', 'q?x=1&y=2', 'h#f', 'ünï/日本/🎉', '.', '..', '../up', 'a/./b', 'x+y',
    ];
    for (const key of keys) {
      const value = `v:${key}`;
      assert.deepEqual(await client.put(key, value), { key, version: 1 }, `put ${JSON.stringify(key)}`);
      assert.deepEqual(await client.get(key), { key, value, version: 1 }, `get ${JSON.stringify(key)}`);
      assert.deepEqual(await client.delete(key), { key, version: 2, deleted: true }, `delete ${JSON.stringify(key)}`);
      assert.deepEqual(await client.get(key), { key, value: null, version: 2 });
    }
  });

  test('the client follows the master: the node it asks names the master, and later calls go there', async () => {
    const master = await servingMaster(cluster, 0);
    await servingMaster(cluster, 1);
    const other = cluster.services.find((service) => service !== master) as KvService;
    // Only the non-master's endpoint is known: the client learns the master from its NOT_MASTER.
    const client = clientOf([endpointOf(cluster, other)]);
    const key = keyInGroup(master, 0, 'follow');
    const total = forwardedTotal(cluster);
    assert.deepEqual(await client.put(key, 'first'), { key, version: 1 });
    assert.deepEqual(await client.put(key, 'second', { version: 1 }), { key, version: 2 });
    assert.deepEqual(await client.get(key), { key, value: 'second', version: 2 });
    assert.deepEqual(await client.get(keyInGroup(master, 0, 'follow-other')), {
      key: keyInGroup(master, 0, 'follow-other'), value: null, version: 0,
    });
    assert.deepEqual(await client.delete(key), { key, version: 3, deleted: true });
    await assert.rejects(client.put(key, 'x', { version: 1 }), kvError('VERSION_CONFLICT'));
    assert.equal(forwardedTotal(cluster), total, 'a KvClient is never forwarded: it went to the master itself');
    // The client's first request opens a session (its writes go through one), so that is the one refused.
    const refused = metricValue((await httpCall(endpointOf(cluster, other), 'GET', '/metrics')).text,
      'multipaxos_kv_requests_total', { op: 'session', outcome: 'NOT_MASTER' });
    assert.ok((refused ?? 0) >= 1, 'the first request was answered NOT_MASTER by the node it reached');
  });

  test('after the master drops its lease, a put through the client succeeds once another node serves', async () => {
    const own = await startKvCluster({ groups: 1 });
    try {
      const first = await servingMaster(own, 0);
      const client = clientOf(own.endpoints, 15_000);
      assert.deepEqual(await client.put('drop', 'before'), { key: 'drop', version: 1 });
      first.node.dropMaster(0);
      const began = performance.now();
      assert.deepEqual(await client.put('drop', 'after', { version: 1 }), { key: 'drop', version: 2 });
      assert.ok(performance.now() - began < 15_000);
      // It got there through refusals: the deposed master answered NO_MASTER or NOT_MASTER at least once.
      let refusals = 0;
      for (const endpoint of own.endpoints) {
        const text = (await httpCall(endpoint, 'GET', '/metrics')).text;
        for (const outcome of ['NO_MASTER', 'NOT_MASTER']) {
          refusals += metricValue(text, 'multipaxos_kv_requests_total', { op: 'put', outcome }) ?? 0;
        }
      }
      assert.ok(refusals >= 1, 'the put was refused and retried');
      const now = await own.serving(0);
      assert.notEqual(now.nodeId, first.nodeId, 'another node is master');
      assert.deepEqual(await client.get('drop'), { key: 'drop', value: 'after', version: 2 });
    } finally {
      await own.stop();
    }
  });
});

test('an endpoint that refuses connections is skipped and the next one serves the write', async () => {
  const closed = `http://127.0.0.1:${await freePort()}`;
  const serving = await fakeServer((_, response) => answer(response, 200, { key: 'k', version: 1 }));
  const client = sessionlessClientOf([closed, serving.endpoint], 5_000);
  assert.deepEqual(await client.put('k', 'v'), { key: 'k', version: 1 });
  assert.equal(serving.seen.length, 1);
  const [request] = serving.seen;
  assert.deepEqual([request?.method, request?.url, JSON.parse(request?.body ?? 'null')], ['PUT', '/v1/kv/k', { value: 'v' }]);
});

test('NOT_MASTER with an endpoint sends the call to that master, and later calls go there first', async () => {
  const master = await fakeServer((request, response) => answer(response, 200,
    request.method === 'GET' ? { key: 'k', value: 'v', version: 1 } : { key: 'k', version: 1 },
    { 'x-multipaxos-groups': '1', 'x-multipaxos-group': '0', 'x-multipaxos-endpoint': master.endpoint }));
  const follower = await fakeServer((_, response) => answer(response, 503,
    failure('NOT_MASTER', { master: { nodeId: 2, endpoint: master.endpoint } })));
  const client = sessionlessClientOf([follower.endpoint], 5_000);
  assert.deepEqual(await client.put('k', 'v'), { key: 'k', version: 1 });
  assert.deepEqual([follower.seen.length, master.seen.length], [1, 1]);
  assert.deepEqual(await client.get('k'), { key: 'k', value: 'v', version: 1 });
  assert.deepEqual([follower.seen.length, master.seen.length], [1, 2], 'the client remembered the master');
});

test('NOT_MASTER without an endpoint moves on to the next endpoint', async () => {
  const follower = await fakeServer((_, response) => answer(response, 503,
    failure('NOT_MASTER', { master: { nodeId: 2, endpoint: null } })));
  const serving = await fakeServer((_, response) => answer(response, 200, { key: 'k', version: 4 }));
  const client = sessionlessClientOf([follower.endpoint, serving.endpoint], 5_000);
  assert.deepEqual(await client.delete('k'), { key: 'k', version: 4, deleted: true });
  assert.deepEqual([follower.seen.length, serving.seen.length], [1, 1]);
  assert.equal(serving.seen[0]?.method, 'DELETE');
});

test('a delete answered KEY_NOT_FOUND is deleted: false with the key\'s version, and is not retried', async () => {
  const serving = await fakeServer((_, response) => answer(response, 404,
    failure('KEY_NOT_FOUND', { mayHaveBeenApplied: false, version: 7 })));
  const client = sessionlessClientOf([serving.endpoint], 5_000);
  assert.deepEqual(await client.delete('k', { version: 7 }), { key: 'k', version: 7, deleted: false });
  assert.deepEqual(serving.seen.map((request) => [request.method, request.url]), [['DELETE', '/v1/kv/k?version=7']]);
});

test('OVERLOADED is retried on the same endpoint until it serves', async () => {
  const flaky = await fakeServer((_, response, index) => {
    if (index < 2) answer(response, 429, failure('OVERLOADED'));
    else answer(response, 200, { key: 'k', version: 9 });
  });
  const spare = await untouched();
  const client = sessionlessClientOf([flaky.endpoint, spare.endpoint], 5_000);
  assert.deepEqual(await client.put('k', 'v', { version: 8 }), { key: 'k', version: 9 });
  assert.equal(flaky.seen.length, 3, 'retried where it was refused');
  assert.ok(flaky.seen.every((seen) => seen.body === '{"value":"v","version":8}'), 'the same write each time');
  assert.equal(spare.seen.length, 0);
});

test('a write that timed out on the server and may have been applied is not retried', async () => {
  const slow = await fakeServer((_, response) => answer(response, 504,
    { ...failure('TIMEOUT'), mayHaveBeenApplied: true }));
  const spare = await untouched();
  // (A fresh client each time: a client that knows no master spreads its calls over the endpoints.)
  await assert.rejects(sessionlessClientOf([slow.endpoint, spare.endpoint], 5_000).put('k', 'v'),
    kvError('TIMEOUT', (error) => error.mayHaveBeenApplied));
  await assert.rejects(sessionlessClientOf([slow.endpoint, spare.endpoint], 5_000).delete('k'),
    kvError('TIMEOUT', (error) => error.mayHaveBeenApplied));
  assert.deepEqual([slow.seen.length, spare.seen.length], [2, 0], 'each write was sent exactly once');
});

test('a read that timed out on the server is retried on another endpoint', async () => {
  const slow = await fakeServer((_, response) => answer(response, 504, failure('TIMEOUT')));
  const serving = await fakeServer((_, response) => answer(response, 200, { key: 'k', value: 'v', version: 2 }));
  const client = sessionlessClientOf([slow.endpoint, serving.endpoint], 5_000);
  assert.deepEqual(await client.get('k'), { key: 'k', value: 'v', version: 2 });
  assert.deepEqual([slow.seen.length, serving.seen.length], [1, 1]);
});

test('a connection lost after a write was sent fails the write as maybe applied; a read moves on', async () => {
  const cut = await fakeServer((_, response) => response.socket?.destroy());
  const serving = await fakeServer((_, response) => answer(response, 200, { key: 'k', value: 'v', version: 3 }));
  const client = sessionlessClientOf([cut.endpoint, serving.endpoint], 5_000);
  await assert.rejects(client.put('k', 'v'), kvError('UNAVAILABLE', (error) => error.mayHaveBeenApplied));
  assert.deepEqual([cut.seen.length, serving.seen.length], [1, 0], 'the write was not sent again');

  const reader = sessionlessClientOf([cut.endpoint, serving.endpoint], 5_000);
  assert.deepEqual(await reader.get('k'), { key: 'k', value: 'v', version: 3 });
  assert.deepEqual([cut.seen.length, serving.seen.length], [2, 1], 'the read was retried on the next endpoint');
});

test('UNAVAILABLE moves a write on only when it certainly was not applied', async () => {
  const refusing = await fakeServer((_, response) => answer(response, 503, failure('UNAVAILABLE')));
  const serving = await fakeServer((_, response) => answer(response, 200, { key: 'k', version: 5 }));
  assert.deepEqual(await sessionlessClientOf([refusing.endpoint, serving.endpoint], 5_000).put('k', 'v'), { key: 'k', version: 5 });
  assert.deepEqual([refusing.seen.length, serving.seen.length], [1, 1]);

  const unsure = await fakeServer((_, response) => answer(response, 503,
    { ...failure('UNAVAILABLE'), mayHaveBeenApplied: true }));
  await assert.rejects(sessionlessClientOf([unsure.endpoint, serving.endpoint], 5_000).put('k', 'v'),
    kvError('UNAVAILABLE', (error) => error.mayHaveBeenApplied));
  assert.deepEqual([unsure.seen.length, serving.seen.length], [1, 1], 'the maybe-applied write was not sent again');
  // A read is retried whatever the write outcome says.
  const reply = { key: 'k', value: 'v', version: 5 };
  const reader = await fakeServer((_, response) => answer(response, 200, reply));
  assert.deepEqual(await sessionlessClientOf([unsure.endpoint, reader.endpoint], 5_000).get('k'), reply);
  assert.deepEqual([unsure.seen.length, reader.seen.length], [2, 1]);
});

test('an abort while the client waits to retry ends the call as ABORTED, not applied', async () => {
  const electing = await fakeServer((_, response) => answer(response, 503, failure('NO_MASTER')));
  const controller = new AbortController();
  const pending = sessionlessClientOf([electing.endpoint], 10_000).put('k', 'v', { signal: controller.signal });
  // From the sixth refusal on the client waits 200 ms before each retry: abort 60 ms into such a wait
  // (the refusal has long arrived; the next attempt is far off), not while an attempt is in flight.
  await waitFor('six refusals', () => electing.seen.length >= 6, 5_000);
  await sleep(60);
  controller.abort();
  const began = performance.now();
  await assert.rejects(pending, kvError('ABORTED', (error) => !error.mayHaveBeenApplied));
  assert.ok(performance.now() - began < 500, 'aborted promptly');
});

test('a deadline reached while retrying is a TIMEOUT that was not applied', async () => {
  const electing = await fakeServer((_, response) => answer(response, 503, failure('NO_MASTER')));
  const began = performance.now();
  await assert.rejects(sessionlessClientOf([electing.endpoint], 10_000).put('k', 'v', { timeoutMs: 600 }),
    kvError('TIMEOUT', (error) => !error.mayHaveBeenApplied && /NO_MASTER/.test(error.message)));
  const elapsed = performance.now() - began;
  assert.ok(elapsed < 1_200, `gave up after ${Math.round(elapsed)} ms`);
  assert.ok(electing.seen.length >= 3, 'it retried until then');
});

test('VERSION_CONFLICT is thrown with the current version, and not retried', async () => {
  const server = await fakeServer((_, response) => answer(response, 409, failure('VERSION_CONFLICT', { version: 7 })));
  const client = sessionlessClientOf([server.endpoint], 5_000);
  await assert.rejects(client.put('k', 'v', { version: 3 }),
    kvError('VERSION_CONFLICT', (error) => error.version === 7 && !error.mayHaveBeenApplied));
  await assert.rejects(client.delete('k', { version: 3 }), kvError('VERSION_CONFLICT', (error) => error.version === 7));
  assert.equal(server.seen.length, 2);
  assert.equal(server.seen[0]?.body, '{"value":"v","version":3}');
  assert.equal(server.seen[1]?.url, '/v1/kv/k?version=3');
});

test('a server that never answers: TIMEOUT at the deadline, maybe applied for a write', async () => {
  const silent = await fakeServer(() => {});
  const client = sessionlessClientOf([silent.endpoint], 10_000);
  for (const [call, isWrite] of [[() => client.put('k', 'v', { timeoutMs: 400 }), true],
    [() => client.get('k', { timeoutMs: 400 }), false]] as const) {
    const began = performance.now();
    await assert.rejects(call(), kvError('TIMEOUT', (error) => error.mayHaveBeenApplied === isWrite));
    const elapsed = performance.now() - began;
    assert.ok(elapsed >= 350 && elapsed < 1_400, `gave up after ${Math.round(elapsed)} ms`);
  }
  assert.equal(silent.seen.length, 2, 'one attempt each');
});

test('an AbortSignal aborts a pending call, and an already-aborted one rejects at once', async () => {
  const silent = await fakeServer(() => {});
  const client = sessionlessClientOf([silent.endpoint], 10_000);
  const controller = new AbortController();
  const pending = client.put('k', 'v', { signal: controller.signal });
  await waitFor('the request to arrive', () => silent.seen.length === 1, 5_000);
  const began = performance.now();
  controller.abort();
  await assert.rejects(pending, kvError('ABORTED', (error) => error.mayHaveBeenApplied));
  assert.ok(performance.now() - began < 500, 'aborted promptly');

  const aborted = AbortSignal.abort();
  const start = performance.now();
  await assert.rejects(client.put('k', 'v', { signal: aborted }), kvError('ABORTED', (error) => !error.mayHaveBeenApplied));
  await assert.rejects(client.get('k', { signal: aborted }), kvError('ABORTED'));
  assert.ok(performance.now() - start < 200);
  await sleep(50);
  assert.equal(silent.seen.length, 1, 'nothing was sent for the aborted signal');
});

test('a reply that is not JSON is UNAVAILABLE', async () => {
  const broken = await fakeServer((_, response) => {
    response.writeHead(200, { 'content-type': 'text/html' });
    response.end('<html>proxy error</html>');
  });
  const client = sessionlessClientOf([broken.endpoint], 2_000);
  await assert.rejects(client.put('k', 'v'), kvError('UNAVAILABLE', (error) => error.mayHaveBeenApplied));
  assert.equal(broken.seen.length, 1, 'a write with an unknown outcome is not sent again');
  // A read keeps trying, then gives up at its deadline with the last error in the message.
  await assert.rejects(client.get('k', { timeoutMs: 300 }),
    kvError('TIMEOUT', (error) => /UNAVAILABLE/.test(error.message) && !error.mayHaveBeenApplied));
  assert.ok(broken.seen.length > 2, 'the read was retried');
});

test('the timeout the client sends is an integer below the attempt\'s timeout, and it asks not to be forwarded', async () => {
  const server = await fakeServer((_, response) => answer(response, 200, { key: 'k', version: 1 }));
  const client = new KvClient({
    endpoints: [server.endpoint], timeoutMs: 10_000, attemptTimeoutMs: 3_000, sessions: false,
  });
  clients.push(client);
  for (const timeoutMs of [1_234, 2_000, 9_999, 120_000]) {
    await client.put('k', 'v', { timeoutMs });
    const headers = server.seen[server.seen.length - 1]?.headers;
    const sent = headers?.['x-multipaxos-timeout-ms'];
    assert.ok(typeof sent === 'string' && /^\d+$/.test(sent), `an integer header, got ${String(sent)}`);
    assert.equal(headers?.['x-multipaxos-no-forward'], '1');
    const value = Number(sent);
    const attemptMs = Math.min(timeoutMs, 3_000);
    assert.ok(value >= 1 && value < attemptMs, `${value} for a call of ${timeoutMs} ms`);
    assert.ok(value >= attemptMs - 260, `${value} leaves the server most of the attempt's ${attemptMs} ms`);
  }
  await client.get('k', { timeoutMs: 500 });
  assert.ok(Number(server.seen[server.seen.length - 1]?.headers['x-multipaxos-timeout-ms']) < 500);
});

test('the constructor refuses no endpoints and endpoints that are not http or https', () => {
  assert.throws(() => new KvClient({ endpoints: [] }), kvError('BAD_REQUEST'));
  // https:// is accepted since the API can serve HTTPS (docs/security.md).
  clientOf(['https://127.0.0.1:8081']).close();
  for (const endpoint of ['ftp://127.0.0.1:21', 'ws://localhost:1', 'http://', 'not a url']) {
    assert.throws(() => new KvClient({ endpoints: [endpoint] }), kvError('BAD_REQUEST'), endpoint);
  }
  // Without a scheme, http:// is assumed.
  sessionlessClientOf(['127.0.0.1:8081', 'localhost:8082', 'http://[::1]:8083']).close();
});

test('timeouts must be positive finite numbers, and keys well-formed Unicode, before anything is sent', async () => {
  for (const timeoutMs of [Number.NaN, Infinity, 0, -1]) {
    assert.throws(() => new KvClient({ endpoints: ['http://127.0.0.1:1'], timeoutMs }), kvError('BAD_REQUEST'),
      String(timeoutMs));
  }
  const client = sessionlessClientOf(['http://127.0.0.1:1']);
  try {
    await assert.rejects(client.put('a', 'x', { timeoutMs: Number.NaN }), kvError('BAD_REQUEST'));
    await assert.rejects(client.get('\ud800'), kvError('BAD_REQUEST'));
  } finally {
    client.close();
  }
});
