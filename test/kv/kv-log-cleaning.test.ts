// End to end: a KV node snapshots, its log is cleaned behind the snapshots, and a restart (the
// snapshot plus the replay of the log's tail) still has every key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvService } from '../../src/kv/kv-service.js';
import { freePort, tempRoot } from '../support/local.js';

const GROUPS = 2;
const HOLD = 3;

async function startNode(dataDir: string, port: number): Promise<KvService> {
  return await KvService.start({
    nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port }], dataDir, groups: GROUPS, masterLeaseMs: 1_000,
    httpEndpoint: 'http://127.0.0.1:1', snapshots: { intervalMs: 0, everyInstances: 0 },
    logCleaning: { holdInstances: HOLD, intervalMs: 20 }, segmentBytes: 64 * 1024,
  });
}

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !condition(); waited += 20) {
    assert.ok(waited < 20_000, `timed out waiting for ${what}`);
    await sleep(20);
  }
}

test('a KV restart after log cleaning has every key (snapshot + tail replay)', async () => {
  {
    const dataDir = await tempRoot('multipaxos-kv-cleaning');
    const port = await freePort();
    const service = await startNode(dataDir, port);
    await until(() => service.status().every((group) => group.serving), 'every group serving');
    // One put at a time: each its own instance, so the log is long enough to clean.
    for (let i = 0; i < 60; i++) await service.put(`key-${i}`, `first-${i}`);
    const taken = await service.snapshot();
    for (let i = 40; i < 80; i++) await service.put(`key-${i}`, `second-${i}`);
    for (const { group, instanceId } of taken) {
      await until(() => service.node.minChosenInstanceId(group) === instanceId + 1 - HOLD,
        `group ${group} cleaned up to its snapshot less the hold`);
      assert.equal(service.status()[group]?.minChosenInstanceId, instanceId + 1 - HOLD, '/status shows it');
    }
    const cleaned = taken.map(({ group }) => service.node.minChosenInstanceId(group));
    await service.stop();

    const again = await startNode(dataDir, port);
    try {
      assert.deepEqual(taken.map(({ group }) => again.node.minChosenInstanceId(group)), cleaned, 'the marks are durable');
      // Start-up decides each group's newest logged instance again: read once the node serves.
      await until(() => again.status().every((group) => group.serving), 'every group serving again');
      for (let i = 0; i < 80; i++) {
        const { value } = await again.get(`key-${i}`);
        assert.equal(value === undefined ? undefined : Buffer.from(value).toString(),
          i < 40 ? `first-${i}` : `second-${i}`, `key-${i}`);
      }
    } finally {
      await again.stop();
    }
  }
});
