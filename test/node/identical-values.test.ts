// The lost write an embedder met on day one: three PaxosNodes, a counter, and 'increment' proposed
// on every node at once. Byte-identical proposals are different proposals: every success must add
// exactly one to every node's counter.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CounterStateMachine } from '../../examples/counter/counter-state-machine.js';
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
async function increment(node: PaxosNode): Promise<number> {
  for (;;) {
    try {
      return (await node.propose(0, 'increment')).result as number;
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
      assert.deepEqual(results.sort(), [1, 2], 'each caller sees its own execution');
      await settle(nodes, counters, 2);
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });

  test('100 increments spread over three nodes count to exactly 100 everywhere', async () => {
    const { nodes, counters } = await startCluster();
    try {
      const results = await Promise.all(Array.from({ length: 100 }, (_, index) => increment(nodes[index % 3]!)));
      assert.deepEqual([...results].sort((x, y) => x - y), Array.from({ length: 100 }, (_, index) => index + 1),
        'every success got a count of its own');
      await settle(nodes, counters, 100);
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });
});
