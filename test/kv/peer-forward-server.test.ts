// The master's side of forwarding over the transport, isolated from the HTTP server by a stand-in
// host: a forwarded body counts against the server's budget for bodies while it is served (beyond
// it, OVERLOADED before the request is looked at), and every failure is a reply, never a rejection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BodyBudget } from '../../src/kv/http-request.js';
import { KvRequestMetrics } from '../../src/kv/kv-metrics.js';
import { serveForwardedRequest, type ForwardedRequestHost } from '../../src/kv/peer-forward-server.js';

function host(budget: BodyBudget, keyRequest: ForwardedRequestHost['keyRequest']): ForwardedRequestHost {
  return {
    tokens: undefined, openMonitoring: false, requests: new KvRequestMetrics(), bodies: budget,
    commonHeaders: () => ({ 'x-multipaxos-node': '2' }), keyRequest,
  };
}

test('a forwarded body holds its bytes in the body budget while served; beyond the budget, OVERLOADED', async () => {
  const budget = new BodyBudget(100);
  let release: () => void = () => {};
  const seen: string[] = [];
  const served = host(budget, async (request) => {
    seen.push(await request.readBody(undefined));
    await new Promise<void>((resolve) => { release = resolve; });
    return { status: 200, body: { key: request.key, version: 1 } };
  });
  const first = serveForwardedRequest(served, 1, { id: 1, timeoutMs: 1_000, method: 'PUT', path: '/v1/kv/a',
    body: Buffer.alloc(60, 0x61) }, false);
  while (seen.length === 0) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(budget.inFlight, 60, 'held while it is served');
  const refused = await serveForwardedRequest(served, 1, { id: 2, timeoutMs: 1_000, method: 'PUT', path: '/v1/kv/b',
    body: Buffer.alloc(41, 0x62) }, false);
  assert.equal(refused.status, 429);
  assert.equal(JSON.parse(refused.body.toString()).error, 'OVERLOADED');
  assert.equal(JSON.parse(refused.body.toString()).mayHaveBeenApplied, false);
  assert.equal(seen.length, 1, 'the refused request was never served');
  release();
  assert.equal((await first).status, 200);
  assert.equal(budget.inFlight, 0, 'given back once answered');
});

test('a failure of the service is a reply (INTERNAL, maybe applied for a write), and the budget is given back', async () => {
  const budget = new BodyBudget(100);
  const reply = await serveForwardedRequest(host(budget, () => Promise.reject(new Error('boom'))), 1,
    { id: 1, timeoutMs: 1_000, method: 'PUT', path: '/v1/kv/a', body: Buffer.from('{}') }, false);
  assert.equal(reply.status, 500);
  assert.deepEqual(JSON.parse(reply.body.toString()), { error: 'INTERNAL', message: 'Error: boom', mayHaveBeenApplied: true });
  assert.equal(reply.headers['x-multipaxos-node'], '2');
  assert.equal(budget.inFlight, 0);
});
