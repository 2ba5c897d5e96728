// Listing keys by prefix on a real in-process cluster of two groups: pages in key order with values
// and versions, merged over the groups (each group's part read on its master, fetched from it when
// the node asked is not), tombstones left out, a write acknowledged before the listing in it, stale
// listings from one node, and bad queries refused.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { KvClient, type KvValue } from '../../src/kv/client.js';
import { httpCall, jsonOf } from './http-helpers.js';
import { startKvCluster, type KvTestCluster } from './kv-fixtures.js';

const cluster: KvTestCluster = await startKvCluster({ groups: 2 });
const client = new KvClient({ endpoints: cluster.endpoints, timeoutMs: 10_000 });
after(async () => {
  client.close();
  await cluster.stop();
});

test('pages of a prefix, in order, over both groups, without tombstones', async () => {
  await cluster.serving(0);
  await cluster.serving(1);
  const expected: KvValue[] = [];
  for (let index = 0; index < 25; index++) {
    const key = `list/${String(index).padStart(2, '0')}`;
    const { version } = await client.put(key, `v${index}`);
    expected.push({ key, value: `v${index}`, version });
  }
  await client.put('list/03', 'again');
  expected[3] = { key: 'list/03', value: 'again', version: 2 };
  await client.put('list/gone', 'x');
  await client.delete('list/gone');
  await client.put('lisp', 'not in the prefix');
  const groups = new Set(expected.map(({ key }) => cluster.services[0]?.groupOf(key)));
  assert.equal(groups.size, 2, 'the keys are in both groups');

  const first = await client.list('list/', { limit: 10 });
  assert.deepEqual(first.items, expected.slice(0, 10));
  assert.equal(first.more, true);
  assert.equal(first.next, 'list/09');
  const second = await client.list('list/', { limit: 10, after: first.next as string });
  assert.deepEqual(second.items, expected.slice(10, 20));
  const all: KvValue[] = [];
  for await (const item of client.scan('list/', { limit: 7 })) all.push(item);
  assert.deepEqual(all, expected, 'every page, in order, no duplicate, no gap');
  const last = await client.list('list/', { after: 'list/20' });
  assert.deepEqual(last, { items: expected.slice(21), more: false, next: null });
});

test('each node answers a listing (fetching the groups it is not master of); stale lists read one node', async () => {
  await client.put('each/a', '1');
  await client.put('each/b', '2');
  for (const endpoint of cluster.endpoints) {
    const answer = await httpCall(endpoint, 'GET', '/v1/kv?prefix=each%2F');
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(jsonOf(answer), {
      items: [{ key: 'each/a', value: '1', version: 1 }, { key: 'each/b', value: '2', version: 1 }], more: false, next: null,
    }, endpoint);
  }
  // A stale listing is whatever the node executed: eventually everything.
  const stale = new KvClient({ endpoints: [cluster.endpoints[2] as string], timeoutMs: 5_000 });
  try {
    for (let tries = 0; ; tries++) {
      const page = await stale.list('each/', { stale: true });
      if (page.items.length === 2 || tries > 100) {
        assert.deepEqual(page.items.map(({ key }) => key), ['each/a', 'each/b']);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } finally {
    stale.close();
  }
});

test('bad listing queries are refused', async () => {
  const endpoint = cluster.endpoints[0] as string;
  for (const query of ['limit=0', 'limit=1001', 'limit=x', 'nope=1', 'group=7', 'group=x']) {
    const answer = await httpCall(endpoint, 'GET', `/v1/kv?${query}`);
    assert.equal(answer.status, 400, `${query}: ${answer.text}`);
  }
  assert.equal((await httpCall(endpoint, 'POST', '/v1/kv')).status, 405);
});
