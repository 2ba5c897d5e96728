// Master election between real processes: kill -9 of the master, and SIGSTOP of the master for
// longer than its lease (after SIGCONT it must know at once that it is no longer master).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodeCluster } from '../../src/testing/process-cluster.js';

const LEASE_MS = 2_000;

/** The one node every running node agrees is master of group 0, once there is one. */
async function agreedMaster(cluster: NodeCluster, nodes: readonly number[], timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const views = await Promise.all(nodes.map((id) => cluster.masters(id)));
    const holders = nodes.filter((_, index) => views[index]?.[0]?.isMaster === true);
    const seen = new Set(views.map((view) => view[0]?.masterNodeId));
    if (holders.length === 1 && seen.size === 1 && seen.has(holders[0])) return holders[0] as number;
    assert.ok(holders.length <= 1, `two nodes believe they are master: ${JSON.stringify(views)}`);
    if (Date.now() > deadline) assert.fail(`no agreed master within ${timeoutMs} ms: ${JSON.stringify(views)}`);
    await sleep(25);
  }
}

describe('master election between real processes', { timeout: 120_000 }, () => {
  const clusters: NodeCluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((cluster) => cluster.destroy()));
  });

  async function cluster(): Promise<NodeCluster> {
    const created = await NodeCluster.create({ nodes: 3, groups: 1, extraFlags: ['--master-lease', String(LEASE_MS)] });
    clusters.push(created);
    await created.startAll();
    return created;
  }

  test('kill -9 of the master: a new one within the lease plus two seconds; the restarted one is not master', async () => {
    const nodes = await cluster();
    const first = await agreedMaster(nodes, nodes.ids, 15_000);
    const killedAt = Date.now();
    await nodes.kill(first);
    const rest = nodes.ids.filter((id) => id !== first);
    const second = await agreedMaster(nodes, rest, LEASE_MS + 2_000);
    const elapsed = Date.now() - killedAt;
    assert.notEqual(second, first);
    assert.ok(elapsed <= LEASE_MS + 2_000, `new master after ${elapsed} ms`);
    await nodes.start(first);
    const view = await nodes.masters(first);
    assert.equal(view[0]?.isMaster, false, 'a restarted node never starts as master');
    assert.equal(await agreedMaster(nodes, nodes.ids, 10_000), second, 'the new master keeps its lease');
  });

  test('SIGSTOP of the master beyond its lease: another takes over, and after SIGCONT the old one is not master', async () => {
    const nodes = await cluster();
    const first = await agreedMaster(nodes, nodes.ids, 15_000);
    nodes.pause(first);
    try {
      const rest = nodes.ids.filter((id) => id !== first);
      const second = await agreedMaster(nodes, rest, LEASE_MS + 2_000);
      assert.notEqual(second, first);
      await sleep(LEASE_MS);
    } finally {
      nodes.resume(first);
    }
    // The first thing the old master answers after waking: it knows its lease is over.
    const view = await nodes.masters(first);
    assert.equal(view[0]?.isMaster, false, `the old master still believes it is master: ${JSON.stringify(view)}`);
    const final = await agreedMaster(nodes, nodes.ids, 10_000);
    assert.notEqual(final, 0);
  });
});
