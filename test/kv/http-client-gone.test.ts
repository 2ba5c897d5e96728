import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { keyInGroup, startKvCluster } from './kv-fixtures.js';
import { httpCall, metricValue } from './http-helpers.js';

/** The master's count of puts that ended ABORTED (the client went away). */
async function abortedPuts(endpoint: string): Promise<number> {
  const answer = await httpCall(endpoint, 'GET', '/metrics');
  return metricValue(answer.text, 'multipaxos_kv_requests_total', { op: 'put', outcome: 'ABORTED' }) ?? 0;
}

test('a put waiting for a majority ends ABORTED as soon as its client closes the connection', async () => {
  const cluster = await startKvCluster({ groups: 1, leaseMs: 10_000 });
  try {
    const master = await cluster.serving(0);
    const endpoint = cluster.endpoints[cluster.services.indexOf(master)] as string;
    const key = keyInGroup(master, 0, 'gone');
    // Without the two others the master cannot get a majority: the put waits for its 20 s.
    await Promise.all(cluster.services.filter((service) => service !== master).map((service) => service.stop()));
    const before = await abortedPuts(endpoint);
    const url = new URL(`/v1/kv/${key}`, endpoint);
    const body = JSON.stringify({ value: 'never written' });
    const outgoing = request(url, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-multipaxos-timeout-ms': '20000' },
    });
    outgoing.on('error', () => {}); // destroyed below, on purpose
    outgoing.end(body);
    await sleep(300);
    const began = performance.now();
    outgoing.destroy();
    for (;;) {
      if (await abortedPuts(endpoint) > before) break;
      assert.ok(performance.now() - began < 5_000, 'the put was not aborted within 5 s of its client leaving');
      await sleep(50);
    }
  } finally {
    await cluster.stop();
  }
});
