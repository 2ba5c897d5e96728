// A node that missed a large gap catches up from its peers' logs, over real TCP between three node
// processes with fsync on, while node 1 keeps proposing; afterwards the three logs are identical,
// record by record, and the node executed every value once and in order. The gap is written into
// the peers' logs by the catch-up benchmark's fixture builder (the real FileLogStore); node 3 learns
// all of it through the protocol.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ChildCluster } from '../../bench/catch-up-cluster.js';
import { appendChosen, fixtureBallot, readLogEnd } from '../../bench/catch-up-fixture.js';
import { chainStep } from '../../src/core/group-context.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { fullCrc32 } from '../../src/io/crc32.js';
import { FileLogStore } from '../../src/io/file-log-store.js';

const GAP = 30_000;
const LIB = fileURLToPath(new URL('../..', import.meta.url));

type Status = Record<string, unknown> & { nowInstanceId: number; executions: { count: number; misordered: number } };

describe('catch-up of a large gap while the cluster writes', { timeout: 240_000 }, () => {
  const clusters: ChildCluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((cluster) => cluster.destroy()));
  });

  test('node 3 learns 30,000 missed instances and ends identical to its peers', async () => {
    const cluster = await ChildCluster.create({ mode: 'paxos', lib: LIB, sync: true });
    clusters.push(cluster);
    const status = async (id: number): Promise<Status> => {
      const reply = await cluster.request(id, { type: 'status' }, 30_000);
      assert.ok(reply.ok, JSON.stringify(reply));
      return reply as unknown as Status;
    };
    await Promise.all([1, 2, 3].map((id) => cluster.start(id)));
    assert.ok((await cluster.request(1, { type: 'load', count: 50, inFlight: 4 }, 60_000)).ok);
    await until(async () => new Set(await Promise.all([1, 2, 3].map(async (id) => (await status(id)).nowInstanceId)))
      .size === 1, 'the three nodes at the same instance');
    for (const id of [3, 1, 2]) await cluster.stop(id);

    const ends = await Promise.all([1, 2].map((id) => readLogEnd(cluster.dataDir(id))));
    const end = ends[0] as Awaited<ReturnType<typeof readLogEnd>>;
    assert.deepEqual(ends[1], end, 'nodes 1 and 2 stopped at the same chosen instance');
    await Promise.all([1, 2].map((id) => appendChosen(cluster.dataDir(id), end, fixtureBallot(ends), GAP, 100)));
    const gapEnd = end.nextInstanceId + GAP;
    await Promise.all([1, 2].map((id) => cluster.start(id, undefined, gapEnd - 1)));

    assert.ok((await cluster.request(1, { type: 'write', inFlight: 16 })).ok);
    await until(async () => (await status(1)).nowInstanceId > gapEnd + 20, 'node 1 writing after the gap');
    const target = (await status(1)).nowInstanceId;
    await cluster.start(3, target);
    const report = await cluster.caughtUp(3, 120_000);
    assert.ok(report.nowInstanceId >= target);
    const written = (await status(1)).written as number;
    await until(async () => ((await status(1)).written as number) > written + 20, 'node 1 still writing');
    const stopped = await cluster.request(1, { type: 'stopWrite' });
    assert.ok(stopped.ok && (stopped.proposals as number) > 0);
    await until(async () => new Set(await Promise.all([1, 2, 3].map(async (id) => (await status(id)).nowInstanceId)))
      .size === 1, 'the three nodes at the same instance again');

    const learner = await status(3);
    const last = learner.nowInstanceId;
    assert.ok(last > target, `node 3 went on past the gap with the writers (${last} > ${target})`);
    assert.equal(learner.executions.misordered, 0, 'no value executed twice or out of order');
    assert.ok(learner.executions.count >= GAP, `node 3 executed ${learner.executions.count} values`);
    for (const id of [1, 2, 3]) await cluster.stop(id);

    const logs = await Promise.all([1, 2, 3].map((id) => chosenRecords(cluster.dataDir(id), last)));
    let checksum = 0;
    for (let instanceId = 0; instanceId < last; instanceId++) {
      const [one, two, three] = logs.map((log) => log[instanceId]);
      assert.ok(one !== undefined && two !== undefined && three !== undefined, `instance ${instanceId} on every node`);
      checksum = chainStep(fullCrc32, checksum, one.value);
      for (const record of [one, two, three]) {
        assert.equal(record.checksum, checksum, `checksum chain at ${instanceId}`);
        assert.deepEqual(record.value, one.value, `value of ${instanceId}`);
      }
    }
  });
});

/** The chosen records of instances below `end`, by instance. */
async function chosenRecords(dataDir: string, end: number): Promise<(AcceptorRecord | undefined)[]> {
  const store = await FileLogStore.open({ directory: dataDir, readOnly: true });
  try {
    const records: (AcceptorRecord | undefined)[] = [];
    for await (const record of store.records(0, 0, end - 1)) {
      if (record.accepted.proposalId !== 0) records[record.instanceId] = record;
    }
    return records;
  } finally {
    await store.close();
  }
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!await condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
