// A plain HTTP request (no KvClient, as through a load balancer) waits within its deadline for its
// group to have a master it can reach: real nodes over TCP, the master stopped under it. KvClient's
// requests (which follow masters themselves) are still refused at once, and a request that cannot
// get a master in time is answered before its deadline, certainly not applied.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KvService } from '../../src/kv/kv-service.js';
import { NO_FORWARD_HEADER, TIMEOUT_HEADER } from '../../src/kv/http-headers.js';
import { httpCall, jsonOf, kvPath, metricValue } from './http-helpers.js';
import { keyInGroup, startKvCluster, type KvTestCluster } from './kv-fixtures.js';

const LEASE_MS = 1_500;

/** Stops the node serving `group` (its HTTP server and its node) and says which index it was. */
async function stopMasterOf(cluster: KvTestCluster, group: number): Promise<number> {
  const master = await cluster.serving(group);
  const index = cluster.services.indexOf(master);
  await (cluster.servers[index] as (typeof cluster.servers)[number]).close();
  await master.stop();
  return index;
}

test('a plain PUT to a survivor when the master stops waits for the next master; KvClient\'s is refused at once',
  async (t) => {
    const cluster = await startKvCluster({ groups: 1, leaseMs: LEASE_MS });
    t.after(() => cluster.stop());
    const key = keyInGroup(cluster.services[0] as KvService, 0, 'wait');
    const first = await httpCall(cluster.endpoints[0] as string, 'PUT', kvPath(key), { body: '{"value":"one"}' });
    assert.equal(first.status, 200, first.text);

    const stopped = await stopMasterOf(cluster, 0);
    const survivor = cluster.endpoints[(stopped + 1) % 3] as string;
    // KvClient's requests follow masters themselves: still refused at once, certainly not applied.
    const refusedAt = performance.now();
    const refused = await httpCall(survivor, 'PUT', kvPath(key), { body: '{"value":"refused"}',
      headers: { [NO_FORWARD_HEADER]: '1' } });
    assert.equal(refused.status, 503, refused.text);
    assert.equal(jsonOf(refused).mayHaveBeenApplied, false);
    assert.ok(performance.now() - refusedAt < LEASE_MS, 'not held');

    // A plain request waits for the next master (the lease runs out first) and is applied once.
    const began = performance.now();
    const answer = await httpCall(survivor, 'PUT', kvPath(key), { body: '{"value":"two"}',
      headers: { [TIMEOUT_HEADER]: '8000' } });
    const waited = performance.now() - began;
    assert.equal(answer.status, 200, answer.text);
    assert.equal(jsonOf(answer).version, 2, 'applied once, after "one"; the refused write was not applied');
    assert.ok(waited < 8_000, `answered after ${Math.round(waited)} ms`);
    const read = jsonOf(await httpCall(survivor, 'GET', kvPath(key)));
    assert.deepEqual([read.value, read.version], ['two', 2]);
    const metrics = await httpCall(survivor, 'GET', '/metrics');
    assert.ok((metricValue(metrics.text, 'multipaxos_kv_master_wait_retries_total') ?? 0) >= 1, 'the wait is counted');
  });

test('with no quorum, a plain PUT is answered before its deadline, certainly not applied', async (t) => {
  const cluster = await startKvCluster({ groups: 1, leaseMs: LEASE_MS });
  t.after(() => cluster.stop());
  const key = keyInGroup(cluster.services[0] as KvService, 0, 'wait');
  const stopped = await stopMasterOf(cluster, 0);
  const other = (stopped + 1) % 3;
  await cluster.servers[other]?.close();
  await cluster.services[other]?.stop();
  const survivor = cluster.endpoints[(stopped + 2) % 3] as string;

  const began = performance.now();
  const answer = await httpCall(survivor, 'PUT', kvPath(key), { body: '{"value":"v"}', headers: { [TIMEOUT_HEADER]: '1000' } });
  const elapsed = performance.now() - began;
  assert.equal(answer.status, 503, answer.text);
  const body = jsonOf(answer);
  assert.ok(['NO_MASTER', 'NOT_MASTER', 'UNAVAILABLE'].includes(body.error as string), answer.text);
  assert.equal(body.mayHaveBeenApplied, false);
  // It waited (tried again), and answered before the caller's 1,000 ms ran out (with some slack).
  assert.ok(elapsed >= 300 && elapsed < 1_500, `answered after ${Math.round(elapsed)} ms`);

  // Once the group has had no master here for longer than a lease, nothing is coming on this side:
  // a request is answered at once (for a load balancer to try another node), still not applied.
  const deadline = performance.now() + 10_000;
  while ((cluster.services[(stopped + 2) % 3] as KvService).masterlessForMs(0) <= LEASE_MS) {
    assert.ok(performance.now() < deadline, 'the lease never ran out on the survivor');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const atOnce = performance.now();
  const refused = await httpCall(survivor, 'PUT', kvPath(key), { body: '{"value":"v"}', headers: { [TIMEOUT_HEADER]: '5000' } });
  assert.equal(refused.status, 503, refused.text);
  assert.equal(jsonOf(refused).mayHaveBeenApplied, false);
  assert.ok(performance.now() - atOnce < 1_000, `answered after ${Math.round(performance.now() - atOnce)} ms`);
});

test('a plain listing waits for every group\'s master the same way', async (t) => {
  const cluster = await startKvCluster({ groups: 2, leaseMs: LEASE_MS });
  t.after(() => cluster.stop());
  const keys = [0, 1].map((group) => keyInGroup(cluster.services[0] as KvService, group, 'listed'));
  for (const key of keys) {
    const put = await httpCall(cluster.endpoints[0] as string, 'PUT', kvPath(key), { body: '{"value":"v"}' });
    assert.equal(put.status, 200, put.text);
  }
  const stopped = await stopMasterOf(cluster, 0);
  const survivor = cluster.endpoints[(stopped + 1) % 3] as string;
  const refused = await httpCall(survivor, 'GET', '/v1/kv?prefix=listed', { headers: { [NO_FORWARD_HEADER]: '1' } });
  assert.equal(refused.status, 503, `KvClient's listing is refused at once: ${refused.text}`);
  const listing = await httpCall(survivor, 'GET', '/v1/kv?prefix=listed', { headers: { [TIMEOUT_HEADER]: '8000' } });
  assert.equal(listing.status, 200, listing.text);
  assert.deepEqual((jsonOf(listing).items as { key: string }[]).map((item) => item.key), [...keys].sort());
});
