// Master election through PaxosNode over TCP: one master at a time, everyone agrees on it, and it
// changes when the master drops its lease or stops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PaxosError, PaxosNode, type MemberAddress } from '../../src/index.js';
import { firstBidDelay } from '../../src/node/group-runtime.js';
import { resolveNodeOptions, type ResolvedNodeOptions } from '../../src/node/node-options.js';
import { freePort, tempRoot } from '../support/local.js';

async function waitFor<T>(probe: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${what} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('three nodes elect one master per group, agree on it, and elect another after a drop and a stop', async () => {
  const root = await tempRoot('master-election');
  const members: MemberAddress[] = [];
  for (let id = 1; id <= 3; id++) members.push({ id, host: '127.0.0.1', port: await freePort() });
  const changes: string[] = [];
  const nodes = await Promise.all(members.map(({ id }) => PaxosNode.start({
    nodeId: id, members, dataDir: join(root, `n${id}`), groups: 2, master: { groups: 'all', leaseMs: 1_000 },
    onMasterChange: (group, master) => changes.push(`n${id} g${group} -> ${master?.nodeId ?? 'none'}`),
  })));
  try {
    const holders = (group: number): PaxosNode[] => nodes.filter((node) => node.isMaster(group));
    for (const group of [0, 1]) {
      // The same master and the same version everywhere: a node that has not yet executed the
      // master's latest renewal (a new version) agrees a moment later, so both are waited for.
      const master = await waitFor(() => {
        const current = holders(group);
        if (current.length !== 1) return undefined;
        const seen = nodes.map((node) => node.master(group));
        const agree = seen.every((view) => view?.nodeId === current[0]!.nodeId && view.version === seen[0]?.version);
        return agree ? current[0] : undefined;
      }, 10_000, `one master of group ${group} that every node agrees on, at one version`);
      assert.ok(changes.some((line) => line.endsWith(`g${group} -> ${master.nodeId}`)), changes.join('\n'));
    }

    // Group 0: the master drops its lease; it steps down at once, and another node takes over.
    const first = holders(0)[0]!;
    first.dropMaster(0);
    assert.equal(first.isMaster(0), false, 'steps down at once');
    assert.equal(first.master(0), undefined);
    const second = await waitFor(() => holders(0).find((node) => node !== first), 5_000, 'a new master after the drop');
    assert.notEqual(second.nodeId, first.nodeId);
    assert.ok(holders(0).length === 1);

    // The new master stops: the remaining two elect one of themselves within the lease and a bit.
    await second.stop();
    const rest = nodes.filter((node) => node !== second);
    const third = await waitFor(() => rest.find((node) => node.isMaster(0)), 6_000, 'a master after a stop');
    assert.equal(rest.filter((node) => node.isMaster(0)).length, 1);
    assert.notEqual(third.nodeId, second.nodeId);

    assert.throws(() => first.setMasterLease(0, 10), (error: unknown) => error instanceof PaxosError &&
      error.code === 'BAD_OPTIONS');
    first.setMasterLease(0, 2_000);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
  }
});

test('master options are validated, and a node outside a group\'s election cannot drop or set its lease', async () => {
  const member = { id: 1, host: '127.0.0.1', port: await freePort() };
  const base = { nodeId: 1, members: [member], dataDir: join(tmpdir(), 'unused-master-options') };
  await assert.rejects(PaxosNode.start({ ...base, master: { leaseMs: 999 } }), /option master\.leaseMs/);
  await assert.rejects(PaxosNode.start({ ...base, master: { driftBound: 0.5 } }), /option master\.driftBound/);
  await assert.rejects(PaxosNode.start({ ...base, master: { groups: [1] } }), /option master\.groups\[0\]/);
  const root = await tempRoot('master-options');
  const node = await PaxosNode.start({ ...base, dataDir: root, groups: 2, master: { groups: [1], leaseMs: 1_000 } });
  try {
    assert.throws(() => node.dropMaster(0), (error: unknown) => error instanceof PaxosError &&
      error.code === 'NOT_ELECTING' && /does not take part in group 0's master election/.test(error.message));
    await waitFor(() => node.isMaster(1) ? true : undefined, 5_000, 'a one-node group elects itself');
    assert.equal(node.isMaster(0), false);
  } finally {
    await node.stop();
  }
});

test('master.spread and master.together: each group prefers one member by id, the others wait half a lease (at most 2 s)',
  () => {
  const members = [3, 1, 2].map((id) => ({ id, host: '127.0.0.1', port: 7000 + id }));
  const resolved = (nodeId: number, placement: { spread?: boolean; together?: boolean }, leaseMs = 3_000):
    ResolvedNodeOptions => resolveNodeOptions({
    nodeId, members, dataDir: '/unused', groups: 4, master: { groups: 'all', leaseMs, ...placement },
  });
  const ids = members.map((member) => member.id);
  const delays = (placement: { spread?: boolean; together?: boolean }, leaseMs?: number): number[][] =>
    [1, 2, 3].map((nodeId) => [0, 1, 2, 3].map((group) =>
      firstBidDelay(resolved(nodeId, placement, leaseMs), group, ids)));
  // Group g prefers the member at g mod 3 in id order: 1, 2, 3, then 1 again.
  assert.deepEqual(delays({ spread: true }), [[0, 1500, 1500, 0], [1500, 0, 1500, 1500], [1500, 1500, 0, 1500]]);
  assert.deepEqual(delays({ spread: true }, 10_000)[0], [0, 2000, 2000, 0]);
  // Together: every group prefers the lowest id.
  assert.deepEqual(delays({ together: true }), [[0, 0, 0, 0], [1500, 1500, 1500, 1500], [1500, 1500, 1500, 1500]]);
  assert.deepEqual(delays({}), [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
  assert.deepEqual(delays({ spread: false, together: false }), [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]);
  const refused = (master: Record<string, unknown>, pattern: RegExp): void => assert.throws(
    () => resolveNodeOptions({ nodeId: 1, members, dataDir: '/unused', master: { groups: 'all', ...master } }),
    (error: unknown) => error instanceof PaxosError && error.code === 'BAD_OPTIONS' && pattern.test(error.message));
  refused({ spread: 'yes' }, /master.spread/);
  refused({ together: 1 }, /master.together/);
  refused({ spread: true, together: true }, /choose one placement/);
});
