// Three real `multipaxos node` processes, every one proposing the very same bytes at once. Each
// success must name its own execution: no two successes share an instance and batch index, and
// every node executed the value exactly as many times as callers were told it was chosen.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NodeCluster } from '../../src/testing/process-cluster.js';
import { converge, waitForGroupIdentities } from '../support/node-convergence.js';

const CALLERS_PER_NODE = 20;
const VALUE = 'increment';

describe('identical values from every node', { timeout: 120_000 }, () => {
  const clusters: NodeCluster[] = [];
  after(async () => {
    await Promise.all(clusters.map((cluster) => cluster.destroy()));
  });

  test('every success is its own execution', async () => {
    const nodes = await NodeCluster.create({ nodes: 3, groups: 1 });
    clusters.push(nodes);
    await nodes.startAll();
    await waitForGroupIdentities(nodes, [0]);
    /** "instance/batch index" → the caller told it was chosen there. */
    const owners = new Map<string, string>();
    const callers: Promise<void>[] = [];
    for (const id of nodes.ids) {
      for (let caller = 0; caller < CALLERS_PER_NODE; caller++) {
        callers.push((async () => {
          // CONFLICT means certainly not chosen, so trying again cannot apply the value twice.
          for (let attempt = 1; ; attempt++) {
            const reply = await nodes.propose(id, 0, VALUE, 20_000);
            if (reply.ok) {
              const slot = `${String(reply.instanceId)}/${String(reply.batchIndex)}`;
              const who = `n${id} caller ${caller}`;
              assert.equal(owners.get(slot), undefined, `${who} and ${owners.get(slot)} were both told ${slot}`);
              owners.set(slot, who);
              return;
            }
            assert.equal(reply.code, 'CONFLICT', `only lost races may fail: ${JSON.stringify(reply)}`);
            assert.ok(attempt < 20, `n${id} caller ${caller} lost 20 races in a row`);
          }
        })());
      }
    }
    await Promise.all(callers);
    assert.equal(owners.size, nodes.ids.length * CALLERS_PER_NODE);
    const [group] = await converge(nodes, { equalValuesProposed: true });
    assert.ok(group !== undefined);
    assert.equal(group.logEntries, owners.size, 'the log holds the value once per success');
    assert.equal(group.executed, owners.size, 'each node executed it once per success');
    for (const [slot] of owners) {
      const [instanceId, batchIndex] = slot.split('/').map(Number) as [number, number];
      for (const id of nodes.ids) assert.equal((await nodes.values(id, 0, instanceId))[batchIndex], VALUE, slot);
    }
  });
});
