// The lost write an embedder met on day one: three PaxosNodes, a counter, and 'increment' proposed
// on every node at once. Byte-identical proposals are different proposals: every success must add
// exactly one to every node's counter.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CounterStateMachine } from '../../examples/counter/counter-state-machine.js';
import { MemoryLogStore, proposalIdentityOf, SeededRandom } from '../../src/building-blocks.js';
import { PaxosError, PaxosNode } from '../../src/index.js';
import { freePort, tempRoot } from '../support/local.js';

async function startCluster(): Promise<{ nodes: PaxosNode[]; counters: CounterStateMachine[] }> {
  const root = await tempRoot('identical-values');
  const members: { id: number; host: string; port: number }[] = [];
  for (const id of [1, 2, 3]) members.push({ id, host: '127.0.0.1', port: await freePort() });
  const counters = members.map(() => new CounterStateMachine());
  const nodes = await Promise.all(members.map(({ id }, index) => PaxosNode.start({
    nodeId: id, members, dataDir: join(root, `n${id}`), stateMachines: [counters[index] as CounterStateMachine],
  })));
  return { nodes, counters };
}

/** Propose until chosen: CONFLICT means certainly not chosen, so a retry cannot add twice. */
async function increment(node: PaxosNode): Promise<{ count: number; instanceId: number }> {
  for (;;) {
    try {
      const { result, instanceId } = await node.propose(0, 'increment');
      return { count: result as number, instanceId };
    } catch (error) {
      if (!(error instanceof PaxosError) || error.code !== 'CONFLICT') throw error;
    }
  }
}

async function settle(nodes: readonly PaxosNode[], counters: readonly CounterStateMachine[], expected: number):
  Promise<void> {
  const deadline = Date.now() + 20_000;
  while (counters.some((counter) => counter.count(0) < expected) && Date.now() < deadline) await sleep(10);
  // Give a stray second execution time to show itself.
  await sleep(200);
  for (const [index, counter] of counters.entries()) {
    assert.equal(counter.count(0), expected, `node ${index + 1} counted ${counter.count(0)} for ${expected} successes`);
  }
  assert.equal(new Set(nodes.map((node) => node.nowInstanceId(0))).size, 1, 'every node at the same instance');
}

describe('byte-identical proposals', { timeout: 60_000 }, () => {
  test('two nodes propose the same bytes at once: two executions', async () => {
    const { nodes, counters } = await startCluster();
    try {
      const [a, b] = nodes as [PaxosNode, PaxosNode];
      const results = await Promise.all([increment(a), increment(b)]);
      assert.deepEqual(results.map(({ count }) => count).sort(), [1, 2], 'each caller sees its own execution');
      await settle(nodes, counters, 2);
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });

  test('100 increments spread over three nodes count to exactly 100 everywhere', async () => {
    const { nodes, counters } = await startCluster();
    try {
      const results = await Promise.all(Array.from({ length: 100 }, (_, index) => increment(nodes[index % 3]!)));
      const counts = results.map(({ count }) => count).sort((x, y) => x - y);
      assert.deepEqual(counts, Array.from({ length: 100 }, (_, index) => index + 1),
        'every success got a count of its own');
      await settle(nodes, counters, 100);
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });

  test('a restarted node given the same seeded Random still proposes under new identities', async () => {
    const store = new MemoryLogStore();
    const members = [{ id: 1, host: '127.0.0.1', port: await freePort() }];
    const identities: string[] = [];
    for (let life = 1; life <= 2; life++) {
      const node = await PaxosNode.start({
        nodeId: 1, members, store, random: new SeededRandom(7), stateMachines: [new CounterStateMachine()],
      });
      try {
        const { instanceId } = await increment(node);
        const identity = proposalIdentityOf((await store.get(0, instanceId))?.value ?? new Uint8Array(0));
        assert.ok(identity !== undefined, `life ${life}: the logged value carries its identity`);
        identities.push(JSON.stringify(identity));
      } finally {
        await node.stop();
      }
    }
    assert.notEqual(identities[0], identities[1], 'the second life began above the first life\'s promise');
  });
});
