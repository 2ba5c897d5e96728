// The KV HTTP API of a real 3-node cluster (TCP between the nodes, HTTP on loopback): exact bodies
// and statuses, versions, forwarding to the master, strict input checking, /status, /metrics, the
// admin routes on the same port, and many concurrent writes.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request, type ClientRequest, type RequestOptions } from 'node:http';
import type { KvService } from '../../src/kv/kv-service.js';
import { httpCall, jsonOf, kvPath, metricValue, waitFor, type HttpAnswer } from './http-helpers.js';
import { keyInGroup, startKvCluster, type KvTestCluster } from './kv-fixtures.js';

// One cluster for the file's tests, stopped when their suite ends: before the file's own hooks
// (such as the removal of the data directories) run.
const cluster: KvTestCluster = await startKvCluster({ groups: 2 });

function endpointOf(service: KvService): string {
  return cluster.endpoints[service.nodeId - 1] as string;
}

/** The group's serving master, and another node that knows the master's endpoint (so it forwards). */
async function masterAndOther(group: number): Promise<{ master: KvService; other: KvService }> {
  const master = await cluster.serving(group);
  const other = cluster.services.find((service) => service !== master) as KvService;
  await waitFor(`node ${other.nodeId} to learn the master of group ${group}`,
    () => other.masterHint(group)?.endpoint === endpointOf(master));
  return { master, other };
}

/** Every group has a serving master whose endpoint every node knows: any node serves any key. */
async function ready(): Promise<void> {
  for (let group = 0; group < cluster.groups; group++) {
    const master = await cluster.serving(group);
    await waitFor(`every node to learn the master of group ${group}`, () =>
      cluster.services.every((service) => service.masterHint(group)?.endpoint === endpointOf(master)));
  }
}

function put(endpoint: string, key: string, body: unknown, headers: Record<string, string> = {}): Promise<HttpAnswer> {
  return httpCall(endpoint, 'PUT', kvPath(key), { body: JSON.stringify(body), headers });
}

/** The answer is the JSON error `code` with `status`, a message, and (a refused request) nothing applied. */
function assertError(answer: HttpAnswer, status: number, code: string): Record<string, unknown> {
  assert.equal(answer.status, status, `expected ${status} ${code}, got ${answer.status}: ${answer.text}`);
  assert.match(String(answer.headers['content-type']), /^application\/json/);
  const body = jsonOf(answer);
  assert.equal(body.error, code, answer.text);
  assert.equal(typeof body.message, 'string');
  assert.ok((body.message as string).length > 0);
  assert.equal(body.mayHaveBeenApplied, false);
  return body;
}

/** A request whose body `send` writes (maybe never finishing it); resolves with the first answer. */
function partialRequest(
  options: RequestOptions, timeoutMs: number, send: (outgoing: ClientRequest) => void,
): Promise<HttpAnswer> {
  return new Promise<HttpAnswer>((resolve, reject) => {
    const outgoing = request(options, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.once('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: incoming.statusCode ?? 0, headers: incoming.headers, text });
        outgoing.destroy();
      });
    });
    outgoing.setTimeout(timeoutMs, () => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    outgoing.once('error', reject);
    send(outgoing);
  });
}

async function metricsText(endpoint: string): Promise<string> {
  const answer = await httpCall(endpoint, 'GET', '/metrics');
  assert.equal(answer.status, 200);
  return answer.text;
}

async function forwardedCount(endpoint: string): Promise<number> {
  const value = metricValue(await metricsText(endpoint), 'multipaxos_kv_forwarded_total');
  assert.ok(value !== undefined, 'multipaxos_kv_forwarded_total is exposed');
  return value;
}

describe('the KV HTTP API of a 3-node cluster', () => {
  after(async () => {
    await cluster.stop();
  });

  test('PUT, GET and DELETE answer exact bodies and statuses, with versions', async () => {
    const { master } = await masterAndOther(0);
    const endpoint = endpointOf(master);
    const key = keyInGroup(master, 0, 'round-trip');

    const created = await put(endpoint, key, { value: 'hello' });
    assert.equal(created.status, 200, created.text);
    assert.match(String(created.headers['content-type']), /^application\/json/);
    assert.deepEqual(jsonOf(created), { key, version: 1 });
    assert.equal(created.headers['x-multipaxos-node'], String(master.nodeId));
    assert.equal(created.headers['x-multipaxos-endpoint'], endpoint);
    assert.equal(created.headers['x-multipaxos-groups'], '2');
    assert.equal(created.headers['x-multipaxos-group'], '0');

    const read = await httpCall(endpoint, 'GET', kvPath(key));
    assert.equal(read.status, 200);
    assert.deepEqual(jsonOf(read), { key, value: 'hello', version: 1 });

    const updated = await put(endpoint, key, { value: 'world', version: 1 });
    assert.deepEqual([updated.status, jsonOf(updated)], [200, { key, version: 2 }]);
    const conflict = assertError(await put(endpoint, key, { value: 'stale', version: 1 }), 409, 'VERSION_CONFLICT');
    assert.equal(conflict.version, 2, 'a conflict tells the current version');
    assertError(await put(endpoint, key, { value: 'create only', version: 0 }), 409, 'VERSION_CONFLICT');
    // version null is the same as no version.
    const unconditional = await put(endpoint, key, { value: 'again', version: null });
    assert.deepEqual([unconditional.status, jsonOf(unconditional)], [200, { key, version: 3 }]);

    const deleteConflict = await httpCall(endpoint, 'DELETE', kvPath(key, '?version=2'));
    assert.equal(assertError(deleteConflict, 409, 'VERSION_CONFLICT').version, 3);
    const deleted = await httpCall(endpoint, 'DELETE', kvPath(key, '?version=3'));
    assert.deepEqual([deleted.status, jsonOf(deleted)], [200, { key, version: 4 }]);
    const gone = assertError(await httpCall(endpoint, 'GET', kvPath(key)), 404, 'KEY_NOT_FOUND');
    assert.equal(gone.version, 4, 'a deleted key keeps its version');
    // Deleting a key that is not set changes nothing: 404 KEY_NOT_FOUND with its version, never applied.
    const again = assertError(await httpCall(endpoint, 'DELETE', kvPath(key)), 404, 'KEY_NOT_FOUND');
    assert.deepEqual([again.version, again.mayHaveBeenApplied], [4, false]);
    assertError(await httpCall(endpoint, 'DELETE', kvPath(key, '?version=4')), 404, 'KEY_NOT_FOUND');
    assertError(await httpCall(endpoint, 'DELETE', kvPath(key, '?version=3')), 409, 'VERSION_CONFLICT');
    assert.equal(assertError(await httpCall(endpoint, 'GET', kvPath(key)), 404, 'KEY_NOT_FOUND').version, 4,
      'deleting a deleted key does not bump its version');
    const back = await put(endpoint, key, { value: 'back', version: 4 });
    assert.deepEqual([back.status, jsonOf(back)], [200, { key, version: 5 }]);
    // A conditional delete may carry its version in the body, like PUT.
    const bodyConflict = await httpCall(endpoint, 'DELETE', kvPath(key), { body: '{"version": 4}' });
    assert.equal(assertError(bodyConflict, 409, 'VERSION_CONFLICT').version, 5);
    const bodyDeleted = await httpCall(endpoint, 'DELETE', kvPath(key), { body: '{"version": 5}' });
    assert.deepEqual([bodyDeleted.status, jsonOf(bodyDeleted)], [200, { key, version: 6 }]);
    const rewritten = await put(endpoint, key, { value: 'back', version: 6 });
    assert.deepEqual([rewritten.status, jsonOf(rewritten)], [200, { key, version: 7 }]);

    const never = keyInGroup(master, 0, 'never-written');
    assert.equal(assertError(await httpCall(endpoint, 'GET', kvPath(never)), 404, 'KEY_NOT_FOUND').version, 0);
    assert.equal(assertError(await httpCall(endpoint, 'DELETE', kvPath(never)), 404, 'KEY_NOT_FOUND').version, 0);
    assert.equal(assertError(await httpCall(endpoint, 'GET', kvPath(never)), 404, 'KEY_NOT_FOUND').version, 0,
      'no tombstone for a key never written');
    const fresh = await put(endpoint, never, { value: '', version: 0 });
    assert.deepEqual([fresh.status, jsonOf(fresh)], [200, { key: never, version: 1 }]);
    assert.deepEqual(jsonOf(await httpCall(endpoint, 'GET', kvPath(never))), { key: never, value: '', version: 1 });

    // Every node executes every write: a stale read anywhere eventually sees it (and is served locally).
    for (const [index, other] of cluster.endpoints.entries()) {
      await waitFor(`node ${index + 1} to execute the write`, async () => {
        const stale = await httpCall(other, 'GET', kvPath(key, '?stale=true'));
        return stale.status === 200 && stale.text === `${JSON.stringify({ key, value: 'back', version: 7 })}\n`;
      });
      const local = await httpCall(other, 'GET', kvPath(key, '?stale'));
      assert.equal(local.headers['x-multipaxos-node'], String(index + 1), 'a stale read is not forwarded');
    }
  });

  test('a request to a node that is not the master is forwarded once and answered by the master', async () => {
    const { master, other } = await masterAndOther(1);
    const masterEndpoint = endpointOf(master);
    const otherEndpoint = endpointOf(other);
    const key = keyInGroup(master, 1, 'forwarded');
    const forwardedBefore = await forwardedCount(otherEndpoint);
    const masterForwardedBefore = await forwardedCount(masterEndpoint);
    const conflictsBefore = metricValue(await metricsText(otherEndpoint), 'multipaxos_kv_requests_total',
      { op: 'put', outcome: 'VERSION_CONFLICT' }) ?? 0;

    const written = await put(otherEndpoint, key, { value: 'via another node' });
    assert.equal(written.status, 200, written.text);
    assert.deepEqual(jsonOf(written), { key, version: 1 });
    assert.equal(written.headers['x-multipaxos-node'], String(master.nodeId), 'the master answered');
    assert.equal(written.headers['x-multipaxos-endpoint'], masterEndpoint);
    assert.equal(written.headers['x-multipaxos-group'], '1');

    const read = await httpCall(otherEndpoint, 'GET', kvPath(key));
    assert.equal(read.status, 200);
    assert.deepEqual(jsonOf(read), { key, value: 'via another node', version: 1 });
    assert.equal(read.headers['x-multipaxos-node'], String(master.nodeId));

    // The master's error is passed through too, and counted by its outcome on the forwarding node.
    const conflict = await put(otherEndpoint, key, { value: 'x', version: 7 });
    assert.equal(assertError(conflict, 409, 'VERSION_CONFLICT').version, 1);
    assert.equal(conflict.headers['x-multipaxos-node'], String(master.nodeId));

    const deleted = await httpCall(otherEndpoint, 'DELETE', kvPath(key, '?version=1'));
    assert.deepEqual([deleted.status, jsonOf(deleted)], [200, { key, version: 2 }]);
    assert.equal(deleted.headers['x-multipaxos-node'], String(master.nodeId));
    // A DELETE's body travels with it: had it been dropped, the delete would answer KEY_NOT_FOUND.
    const stale = await httpCall(otherEndpoint, 'DELETE', kvPath(key), { body: '{"version": 1}' });
    assert.equal(assertError(stale, 409, 'VERSION_CONFLICT').version, 2);

    assert.equal(await forwardedCount(otherEndpoint), forwardedBefore + 5);
    assert.equal(await forwardedCount(masterEndpoint), masterForwardedBefore, 'the master forwards nothing');
    assert.equal(metricValue(await metricsText(otherEndpoint), 'multipaxos_kv_requests_total',
      { op: 'put', outcome: 'VERSION_CONFLICT' }), conflictsBefore + 1);

    // A request that was already forwarded is not forwarded again: NOT_MASTER with where the master is.
    const hop = await put(otherEndpoint, key, { value: 'second hop' }, { 'x-multipaxos-forwarded-by': '9' });
    const refused = assertError(hop, 503, 'NOT_MASTER');
    assert.deepEqual(refused.master, { nodeId: master.nodeId, endpoint: masterEndpoint });
    assert.equal(hop.headers['x-multipaxos-node'], String(other.nodeId), 'the non-master answered itself');
    const hopRead = await httpCall(otherEndpoint, 'GET', kvPath(key), { headers: { 'x-multipaxos-forwarded-by': '9' } });
    assert.deepEqual(assertError(hopRead, 503, 'NOT_MASTER').master, { nodeId: master.nodeId, endpoint: masterEndpoint });
    assert.equal(await forwardedCount(otherEndpoint), forwardedBefore + 5, 'those were not forwarded');
    assert.equal(assertError(await httpCall(masterEndpoint, 'GET', kvPath(key)), 404, 'KEY_NOT_FOUND').version, 2,
      'the refused write was not applied');
    // The master itself serves a request that was forwarded to it.
    const direct = await put(masterEndpoint, key, { value: 'served', version: 2 }, { 'x-multipaxos-forwarded-by': '9' });
    assert.deepEqual([direct.status, jsonOf(direct)], [200, { key, version: 3 }]);
    assert.equal(direct.headers['x-multipaxos-node'], String(master.nodeId));
  });

  interface BadRequestCase {
    readonly name: string;
    readonly method: string;
    readonly path: string;
    readonly body?: string;
    readonly headers?: Readonly<Record<string, string>>;
    readonly status: number;
    readonly code: string;
    readonly message?: RegExp;
    /** A 405's Allow header. */
    readonly allow?: string;
  }

  const MIB = 1024 * 1024;

  const BAD_REQUESTS: readonly BadRequestCase[] = [
    { name: 'bad JSON', method: 'PUT', path: '/v1/kv/a', body: '{"value": ', status: 400, code: 'BAD_REQUEST',
      message: /JSON/ },
    { name: 'empty body', method: 'PUT', path: '/v1/kv/a', body: '', status: 400, code: 'BAD_REQUEST' },
    { name: 'an array', method: 'PUT', path: '/v1/kv/a', body: '["x"]', status: 400, code: 'BAD_REQUEST',
      message: /object/ },
    { name: 'a string', method: 'PUT', path: '/v1/kv/a', body: '"x"', status: 400, code: 'BAD_REQUEST' },
    { name: 'null', method: 'PUT', path: '/v1/kv/a', body: 'null', status: 400, code: 'BAD_REQUEST' },
    { name: 'an unknown field', method: 'PUT', path: '/v1/kv/a', body: '{"value":"x","ttl":5}', status: 400,
      code: 'BAD_REQUEST', message: /ttl/ },
    { name: 'no value', method: 'PUT', path: '/v1/kv/a', body: '{}', status: 400, code: 'BAD_REQUEST', message: /value/ },
    { name: 'a number value', method: 'PUT', path: '/v1/kv/a', body: '{"value":1}', status: 400, code: 'BAD_REQUEST' },
    { name: 'a null value', method: 'PUT', path: '/v1/kv/a', body: '{"value":null}', status: 400, code: 'BAD_REQUEST' },
    { name: 'a negative version', method: 'PUT', path: '/v1/kv/a', body: '{"value":"x","version":-1}', status: 400,
      code: 'BAD_REQUEST', message: /version/ },
    { name: 'a fractional version', method: 'PUT', path: '/v1/kv/a', body: '{"value":"x","version":1.5}', status: 400,
      code: 'BAD_REQUEST' },
    { name: 'a string version', method: 'PUT', path: '/v1/kv/a', body: '{"value":"x","version":"1"}', status: 400,
      code: 'BAD_REQUEST' },
    { name: 'an unsafe version', method: 'PUT', path: '/v1/kv/a', body: '{"value":"x","version":9007199254740993}',
      status: 400, code: 'BAD_REQUEST' },
    { name: 'a key of 4097 bytes', method: 'PUT', path: `/v1/kv/${'k'.repeat(4097)}`, body: '{"value":"x"}',
      status: 413, code: 'KEY_TOO_LARGE' },
    { name: 'a key of 2049 two-byte characters', method: 'GET', path: kvPath('é'.repeat(2049)), status: 413,
      code: 'KEY_TOO_LARGE' },
    { name: 'a value of 1 MiB + 1 byte', method: 'PUT', path: '/v1/kv/a', body: JSON.stringify({ value: 'v'.repeat(MIB + 1) }),
      status: 413, code: 'VALUE_TOO_LARGE' },
    { name: 'a value of 1 MiB + 2 bytes in fewer characters', method: 'PUT', path: '/v1/kv/a',
      body: JSON.stringify({ value: 'é'.repeat(MIB / 2 + 1) }), status: 413, code: 'VALUE_TOO_LARGE' },
    { name: 'a truncated percent-encoding', method: 'GET', path: '/v1/kv/a%E', status: 400, code: 'BAD_REQUEST',
      message: /percent/ },
    { name: 'a bad percent-escape', method: 'GET', path: '/v1/kv/%ZZ', status: 400, code: 'BAD_REQUEST' },
    { name: 'percent-encoded bytes that are not UTF-8', method: 'PUT', path: '/v1/kv/%FF%FE', body: '{"value":"x"}',
      status: 400, code: 'BAD_REQUEST' },
    { name: 'an empty key', method: 'PUT', path: '/v1/kv/', body: '{"value":"x"}', status: 400, code: 'BAD_REQUEST',
      message: /key/ },
    { name: 'an unknown path', method: 'GET', path: '/v2/kv/a', status: 404, code: 'NOT_FOUND' },
    // GET /v1/kv is the listing now (a 200); other methods on it are refused.
    { name: 'a write to the listing path', method: 'PUT', path: '/v1/kv', status: 405, code: 'METHOD_NOT_ALLOWED',
      allow: 'GET, HEAD' },
    { name: 'POST on a key', method: 'POST', path: '/v1/kv/a', body: '{"value":"x"}', status: 405,
      code: 'METHOD_NOT_ALLOWED', allow: 'GET, PUT, DELETE' },
    { name: 'PATCH on a key', method: 'PATCH', path: '/v1/kv/a', body: '{"value":"x"}', status: 405,
      code: 'METHOD_NOT_ALLOWED', allow: 'GET, PUT, DELETE' },
    { name: 'PUT on /status', method: 'PUT', path: '/status', body: '{}', status: 405, code: 'METHOD_NOT_ALLOWED',
      allow: 'GET, HEAD' },
    { name: 'POST on /metrics', method: 'POST', path: '/metrics', body: '{}', status: 405, code: 'METHOD_NOT_ALLOWED',
      allow: 'GET, HEAD' },
    { name: 'GET on /v1/snapshots', method: 'GET', path: '/v1/snapshots', status: 405, code: 'METHOD_NOT_ALLOWED',
      allow: 'POST' },
    { name: 'a DELETE body with an unknown field', method: 'DELETE', path: '/v1/kv/a', body: '{"versoin":2}', status: 400,
      code: 'BAD_REQUEST', message: /unknown field "versoin"/ },
    { name: 'a DELETE body with a value', method: 'DELETE', path: '/v1/kv/a', body: '{"value":"x","version":0}',
      status: 400, code: 'BAD_REQUEST', message: /unknown field "value"/ },
    { name: 'a DELETE body version that is a string', method: 'DELETE', path: '/v1/kv/a', body: '{"version":"2"}',
      status: 400, code: 'BAD_REQUEST', message: /version/ },
    { name: 'a negative DELETE body version', method: 'DELETE', path: '/v1/kv/a', body: '{"version":-1}', status: 400,
      code: 'BAD_REQUEST' },
    { name: 'a DELETE body that is not JSON', method: 'DELETE', path: '/v1/kv/a', body: 'version=2', status: 400,
      code: 'BAD_REQUEST', message: /JSON/ },
    { name: 'a DELETE body that is not an object', method: 'DELETE', path: '/v1/kv/a', body: '[2]', status: 400,
      code: 'BAD_REQUEST', message: /object/ },
    { name: 'a DELETE version in both query and body', method: 'DELETE', path: '/v1/kv/a?version=0',
      body: '{"version":0}', status: 400, code: 'BAD_REQUEST', message: /once/ },
    { name: 'a DELETE body over 4 KiB', method: 'DELETE', path: '/v1/kv/a', body: `{"version":0${' '.repeat(4096)}}`,
      status: 413, code: 'VALUE_TOO_LARGE' },
    { name: 'an unknown query parameter on GET', method: 'GET', path: '/v1/kv/a?consistent=true', status: 400,
      code: 'BAD_REQUEST', message: /consistent/ },
    { name: 'a version parameter on PUT', method: 'PUT', path: '/v1/kv/a?version=1', body: '{"value":"x"}', status: 400,
      code: 'BAD_REQUEST' },
    { name: 'stale on DELETE', method: 'DELETE', path: '/v1/kv/a?stale=true', status: 400, code: 'BAD_REQUEST' },
    { name: 'a query on /status', method: 'GET', path: '/status?verbose=1', status: 400, code: 'BAD_REQUEST' },
    { name: 'stale=maybe', method: 'GET', path: '/v1/kv/a?stale=maybe', status: 400, code: 'BAD_REQUEST',
      message: /stale/ },
    { name: 'a negative DELETE version', method: 'DELETE', path: '/v1/kv/a?version=-1', status: 400,
      code: 'BAD_REQUEST' },
    { name: 'a fractional DELETE version', method: 'DELETE', path: '/v1/kv/a?version=1.5', status: 400,
      code: 'BAD_REQUEST' },
    { name: 'a text DELETE version', method: 'DELETE', path: '/v1/kv/a?version=one', status: 400, code: 'BAD_REQUEST' },
    { name: 'an empty DELETE version', method: 'DELETE', path: '/v1/kv/a?version=', status: 400, code: 'BAD_REQUEST' },
    { name: 'a value with an unpaired surrogate', method: 'PUT', path: '/v1/kv/a', body: '{"value":"\\ud800"}',
      status: 400, code: 'BAD_REQUEST', message: /Unicode/ },
    { name: 'an absolute-form target that is not a URL', method: 'PUT', path: 'http://[::1', body: '{"value":"x"}',
      status: 400, code: 'BAD_REQUEST' },
    ...['abc', '0', '-5', '1.5', '60001', '1e3', ''].map((timeout): BadRequestCase => ({
      name: `x-multipaxos-timeout-ms: "${timeout}"`, method: 'GET', path: '/v1/kv/a',
      headers: { 'x-multipaxos-timeout-ms': timeout }, status: 400, code: 'BAD_REQUEST', message: /timeout/,
    })),
  ];

  test('bad requests get a clear 4xx JSON error, applied nowhere, and the server keeps serving', async () => {
    const { master, other } = await masterAndOther(0);
    const marker = keyInGroup(master, 0, 'after-bad-requests');
    // Both on the master and on a node that would forward: a bad request is refused where it arrives.
    for (const endpoint of [endpointOf(master), endpointOf(other)]) {
      const forwardedBefore = await forwardedCount(endpoint);
      for (const bad of BAD_REQUESTS) {
        const answer = await httpCall(endpoint, bad.method, bad.path, { body: bad.body, headers: bad.headers });
        const body = assertError(answer, bad.status, bad.code);
        if (bad.message !== undefined) assert.match(body.message as string, bad.message, bad.name);
        assert.equal(answer.headers.allow, bad.allow, `${bad.name}: the Allow header`);
      }
      assert.equal(await forwardedCount(endpoint), forwardedBefore, 'bad requests are not forwarded');
      const written = await put(endpoint, marker, { value: endpoint });
      assert.equal(written.status, 200, `${endpoint} still serves writes: ${written.text}`);
      const read = await httpCall(endpoint, 'GET', kvPath(marker));
      assert.equal(jsonOf(read).value, endpoint);
    }
    // Nothing above wrote key "a".
    assert.equal(assertError(await httpCall(endpointOf(master), 'GET', '/v1/kv/a'), 404, 'KEY_NOT_FOUND').version, 0);
    // A valid timeout header at the limit is accepted.
    const limit = await httpCall(endpointOf(master), 'GET', kvPath(marker), { headers: { 'x-multipaxos-timeout-ms': '60000' } });
    assert.equal(limit.status, 200);
  });

  test('values at the size limits are accepted, larger ones refused even before the body arrives', async () => {
    await ready();
    const endpoint = cluster.endpoints[0] as string;
    // The worst case for JSON: every byte escaped as \u00XX (six characters).
    const escaped = '\u0001'.repeat(MIB);
    const big = await put(endpoint, 'limit-escaped', { value: escaped });
    assert.equal(big.status, 200, big.text);
    const read = jsonOf(await httpCall(endpoint, 'GET', kvPath('limit-escaped')));
    assert.equal(read.value, escaped);
    const longest = 'k'.repeat(4096);
    const keyed = await put(endpoint, longest, { value: 'longest key' });
    assert.deepEqual([keyed.status, jsonOf(keyed)], [200, { key: longest, version: 1 }]);

    // A body declared far larger than the limit is refused at once, without waiting for it.
    const { hostname, port } = new URL(endpoint);
    const declared = await partialRequest({
      hostname, port, path: '/v1/kv/huge', method: 'PUT', agent: false,
      headers: { 'content-type': 'application/json', 'content-length': 500_000_000 },
    }, 5_000, (outgoing) => { outgoing.write('{"value":"'); });
    assert.match(assertError(declared, 413, 'VALUE_TOO_LARGE').message as string, /500000000/);

    // A chunked body (no content-length) that grows beyond the limit is refused too. (The client keeps
    // its connection alive, so the server drains the rest instead of closing under the client's writes.)
    const agent = new Agent({ keepAlive: true });
    const chunked = await partialRequest({
      hostname, port, path: '/v1/kv/huge', method: 'PUT', agent, headers: { 'content-type': 'application/json' },
    }, 10_000, (outgoing) => {
      outgoing.write('{"value":"');
      const chunk = 'x'.repeat(MIB);
      const pump = (): void => {
        for (let sent = 0; sent < 8; sent++) {
          if (outgoing.destroyed) return;
          if (!outgoing.write(chunk)) {
            outgoing.once('drain', pump);
            return;
          }
        }
      };
      pump();
    });
    agent.destroy();
    assertError(chunked, 413, 'VALUE_TOO_LARGE');

    const afterwards = await httpCall(endpoint, 'GET', kvPath('huge'));
    assert.equal(assertError(afterwards, 404, 'KEY_NOT_FOUND').version, 0, 'nothing was written');
  });

  test('keys with slashes, spaces, unicode, percent signs and dots round-trip exactly', async () => {
    await ready();
    const keys = [
      'a/b/c', '/leading', 'trailing/', 'with space', '  ', 'ünïcödé-日本語-🎉', '100%', '%41', '%2F', 'a?b=c&d=e',
      'hash#tag', 'plus+sign', 'a/../b', './x', '.', '..', '...', 'tab\there', 'quote"and\\backslash', '\ufeffbom',
    ];
    for (const [index, key] of keys.entries()) {
      const endpoint = cluster.endpoints[index % cluster.endpoints.length] as string;
      const value = `value of ${JSON.stringify(key)}`;
      const written = await put(endpoint, key, { value });
      assert.equal(written.status, 200, `PUT ${JSON.stringify(key)}: ${written.text}`);
      assert.deepEqual(jsonOf(written), { key, version: 1 }, `PUT ${JSON.stringify(key)}`);
      // Read on every node: at least two of them forward the request to the master, path and all.
      for (const other of cluster.endpoints) {
        const read = await httpCall(other, 'GET', kvPath(key));
        assert.equal(read.status, 200, `GET ${JSON.stringify(key)} on ${other}: ${read.text}`);
        assert.deepEqual(jsonOf(read), { key, value, version: 1 }, `GET ${JSON.stringify(key)} on ${other}`);
      }
    }
    // A slash need not be encoded: /v1/kv/a/b/c names the key "a/b/c".
    const raw = await httpCall(cluster.endpoints[0] as string, 'GET', '/v1/kv/a/b/c');
    assert.deepEqual(jsonOf(raw), { key: 'a/b/c', value: 'value of "a/b/c"', version: 1 });
    // Any spelling of the same bytes is the same key.
    const spelled = await httpCall(cluster.endpoints[1] as string, 'GET', '/v1/kv/%61%2f%62/c');
    assert.equal(jsonOf(spelled).key, 'a/b/c');
  });

  /** Checks the Prometheus text format; returns each family's type. */
  function parseExposition(text: string): Map<string, string> {
    assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
    const helped = new Set<string>();
    const types = new Map<string, string>();
    const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
    const sample = new RegExp(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\\{${label}(?:,${label})*\\})? ` +
      '(NaN|[+-]Inf|-?\\d+(?:\\.\\d+)?(?:e[+-]?\\d+)?)$');
    let current: string | undefined;
    for (const line of text.slice(0, -1).split('\n')) {
      const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$/.exec(line);
      if (help !== null) {
        const name = help[1] as string;
        assert.ok(!helped.has(name) && !types.has(name), `family ${name} is described once`);
        helped.add(name);
        current = undefined;
        continue;
      }
      const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
      if (type !== null) {
        const name = type[1] as string;
        assert.ok(helped.has(name), `HELP of ${name} comes before its TYPE`);
        assert.ok(!types.has(name), `family ${name} is typed once`);
        types.set(name, type[2] as string);
        current = name;
        continue;
      }
      const match = sample.exec(line);
      assert.ok(match !== null, `not a sample line: ${JSON.stringify(line)}`);
      const name = match[1] as string;
      const family = types.get(name) === undefined && current !== undefined && types.get(current) === 'histogram' &&
        [`${current}_bucket`, `${current}_sum`, `${current}_count`].includes(name) ? current : name;
      assert.equal(family, current, `sample ${name} follows the HELP and TYPE of its family`);
    }
    return types;
  }

  test('/status and /metrics describe the node', async () => {
    const { master } = await masterAndOther(0);
    await masterAndOther(1);
    const endpoint = endpointOf(master);
    const text = await metricsText(endpoint);
    const okPuts = metricValue(text, 'multipaxos_kv_requests_total', { op: 'put', outcome: 'OK' }) ?? 0;
    const missing = metricValue(text, 'multipaxos_kv_requests_total', { op: 'get', outcome: 'KEY_NOT_FOUND' }) ?? 0;
    const key = keyInGroup(master, 0, 'metrics');
    assert.equal((await put(endpoint, key, { value: 'm' })).status, 200);
    assert.equal((await httpCall(endpoint, 'GET', kvPath(keyInGroup(master, 0, 'metrics-missing')))).status, 404);
    assert.equal((await httpCall(endpoint, 'DELETE', kvPath(key))).status, 200);

    const status = await httpCall(endpoint, 'GET', '/status');
    assert.equal(status.status, 200);
    assert.match(String(status.headers['content-type']), /^application\/json/);
    const body = jsonOf(status);
    assert.equal(body.nodeId, master.nodeId);
    assert.equal(body.endpoint, endpoint);
    assert.equal(body.follower, false);
    assert.deepEqual((body.members as { id: number }[]).map((member) => member.id), [1, 2, 3]);
    const groups = body.groups as Record<string, unknown>[];
    assert.equal(groups.length, 2);
    for (const [index, group] of groups.entries()) {
      assert.equal(group.group, index);
      assert.ok(Number.isSafeInteger(group.nowInstanceId) && (group.nowInstanceId as number) > 0);
      assert.deepEqual(group.members, [1, 2, 3]);
      assert.equal(typeof group.isMaster, 'boolean');
      assert.equal(typeof group.serving, 'boolean');
      const groupMaster = group.master as { nodeId: number; endpoint: string };
      assert.equal(groupMaster.endpoint, cluster.endpoints[groupMaster.nodeId - 1]);
      assert.equal(group.isMaster, groupMaster.nodeId === master.nodeId);
    }
    assert.deepEqual([groups[0]?.isMaster, groups[0]?.serving], [true, true]);
    assert.deepEqual((groups[0]?.master as { nodeId: number }).nodeId, master.nodeId);

    const metrics = await httpCall(endpoint, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(String(metrics.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const types = parseExposition(metrics.text);
    assert.equal(types.get('multipaxos_kv_requests_total'), 'counter');
    assert.equal(types.get('multipaxos_kv_request_duration_seconds'), 'histogram');
    assert.equal(metricValue(metrics.text, 'multipaxos_kv_requests_total', { op: 'put', outcome: 'OK' }), okPuts + 1);
    assert.equal(metricValue(metrics.text, 'multipaxos_kv_requests_total', { op: 'get', outcome: 'KEY_NOT_FOUND' }),
      missing + 1);
    assert.ok((metricValue(metrics.text, 'multipaxos_kv_requests_total', { op: 'delete', outcome: 'OK' }) ?? 0) >= 1);

    for (const op of ['put', 'get', 'delete']) {
      const buckets = [...metrics.text.matchAll(
        new RegExp(`^multipaxos_kv_request_duration_seconds_bucket\\{op="${op}",le="([^"]+)"\\} (\\d+)$`, 'gm'))]
        .map((match) => ({ le: match[1] as string, count: Number(match[2]) }));
      assert.ok(buckets.length >= 2, `${op} has buckets`);
      const last = buckets[buckets.length - 1] as { le: string; count: number };
      assert.equal(last.le, '+Inf', 'the last bucket is +Inf');
      const bounds = buckets.slice(0, -1).map((bucket) => Number(bucket.le));
      assert.deepEqual(bounds, [...bounds].sort((a, b) => a - b), 'bounds ascend');
      for (let i = 1; i < buckets.length; i++) {
        assert.ok((buckets[i] as { count: number }).count >= (buckets[i - 1] as { count: number }).count, 'cumulative');
      }
      const count = metricValue(metrics.text, 'multipaxos_kv_request_duration_seconds_count', { op });
      assert.equal(last.count, count, '+Inf equals _count');
      assert.ok((count ?? 0) >= 1);
      assert.ok((metricValue(metrics.text, 'multipaxos_kv_request_duration_seconds_sum', { op }) ?? -1) > 0);
    }
    for (const group of ['0', '1']) {
      assert.ok((metricValue(metrics.text, 'multipaxos_instance_id', { group }) ?? 0) > 0, `instance of group ${group}`);
      assert.ok((metricValue(metrics.text, 'multipaxos_log_fsyncs_total', { group }) ?? 0) > 0, `fsyncs of ${group}`);
      const queued = metricValue(metrics.text, 'multipaxos_queue_proposals', { group });
      assert.ok(queued !== undefined && Number.isSafeInteger(queued) && queued >= 0, `queue of group ${group}`);
    }
    assert.equal(metricValue(metrics.text, 'multipaxos_is_master', { group: '0' }), 1);
    assert.equal(metricValue(metrics.text, 'multipaxos_master_node_id', { group: '0' }), master.nodeId);
    assert.equal(types.get('multipaxos_instance_id'), 'gauge');
    assert.equal(types.get('multipaxos_log_fsyncs_total'), 'counter');
    // The store's file writes: at most the groups' writes together (group commit shares them).
    const flushes = metricValue(metrics.text, 'multipaxos_log_flushes_total') ?? 0;
    const groupWrites = ['0', '1'].reduce((sum, group) =>
      sum + (metricValue(metrics.text, 'multipaxos_log_writes_total', { group }) ?? 0), 0);
    assert.ok(flushes > 0 && flushes <= groupWrites, `${flushes} file writes for ${groupWrites} group writes`);
    assert.equal(types.get('multipaxos_log_flushes_total'), 'counter');
    assert.equal(types.get('multipaxos_queue_proposals'), 'gauge');
    // Transport figures: counts are counters, levels (open connections, buffered bytes) are gauges.
    assert.equal(types.get('multipaxos_transport_frames_sent'), 'counter');
    assert.ok((metricValue(metrics.text, 'multipaxos_transport_frames_sent') ?? 0) > 0);
    assert.equal(types.get('multipaxos_transport_open_connections'), 'gauge');
    assert.ok((metricValue(metrics.text, 'multipaxos_transport_open_connections') ?? 0) >= 2, 'connected to both peers');
    assert.equal(types.get('multipaxos_transport_receive_buffer_bytes'), 'gauge');
    assert.equal(types.get('multipaxos_transport_pending_handshakes'), 'gauge');
    // Every node's /metrics is valid, not only the master's.
    for (const other of cluster.endpoints) parseExposition(await metricsText(other));
  });

  test('200 concurrent PUTs of distinct keys across every endpoint all succeed and read back', async () => {
    await ready();
    const count = 200;
    const keyOf = (i: number): string => `concurrent/${i}`;
    const writes = await Promise.all(Array.from({ length: count }, (_, i) =>
      put(cluster.endpoints[i % cluster.endpoints.length] as string, keyOf(i), { value: `v${i}` })));
    for (const [i, answer] of writes.entries()) {
      assert.equal(answer.status, 200, `PUT ${keyOf(i)}: ${answer.text}`);
      assert.deepEqual(jsonOf(answer), { key: keyOf(i), version: 1 });
    }
    const reads = await Promise.all(Array.from({ length: count }, (_, i) =>
      httpCall(cluster.endpoints[(i + 1) % cluster.endpoints.length] as string, 'GET', kvPath(keyOf(i)))));
    for (const [i, answer] of reads.entries()) {
      assert.equal(answer.status, 200, `GET ${keyOf(i)}: ${answer.text}`);
      assert.deepEqual(jsonOf(answer), { key: keyOf(i), value: `v${i}`, version: 1 });
    }
  });

  test('the admin routes are served on the same port', async () => {
    const { master } = await masterAndOther(0);
    for (const [index, endpoint] of cluster.endpoints.entries()) {
      const members = await httpCall(endpoint, 'GET', '/v1/members');
      assert.equal(members.status, 200, members.text);
      const listed = (jsonOf(members).members as { id: number; host: string; port: number }[]);
      assert.deepEqual(listed.map((member) => member.id), [1, 2, 3]);
      const answer = await httpCall(endpoint, 'GET', '/v1/master?group=0');
      assert.equal(answer.status, 200, answer.text);
      const body = jsonOf(answer);
      assert.equal(body.nodeId, index + 1);
      assert.equal((body.master as { nodeId: number }).nodeId, master.nodeId);
      assert.equal(body.isMaster, master.nodeId === index + 1);
    }
    assert.equal((await httpCall(cluster.endpoints[0] as string, 'GET', '/v1/master?group=x')).status, 400);
    assert.equal((await httpCall(cluster.endpoints[0] as string, 'GET', '/v1/members/oops')).status, 404);
  });
});
