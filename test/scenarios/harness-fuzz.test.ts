// Randomized scripts on the hand-driven harness: random proposals, deliveries, drops, duplicates,
// crashes (some before the write), restarts and failing executions, checking after every step that
// all nodes execute one sequence, that no timer is left due, and at the end that every proposal
// outcome tells the truth. It complements the simulator with crashes between a step and its write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { SeededRandom } from '../../src/util/random.js';
import { proposalBody } from '../../src/core/proposal-identity.js';
import { fromUtf8 } from '../../src/util/bytes.js';

function run(seed: number): void {
  const r = new SeededRandom(seed);
  const duplicates = seed % 3 === 0;
  const n = r.chance(0.5) ? 3 : 5;
  const h = new CoreHarness({ nodes: n, seed });
  const proposals = new Map<number, { node: number; value: string }>();
  let counter = 0;
  const chosenAt = new Map<number, string>();
  const check = () => {
    for (const node of h.nodes.values()) {
      node.executed.forEach((c, i) => {
        assert.equal(c.instanceId, i, `seed ${seed} n${node.id} order`);
        const v = fromUtf8(proposalBody(c.value));
        const prev = chosenAt.get(i);
        if (prev === undefined) chosenAt.set(i, v);
        else assert.equal(v, prev, `seed ${seed} instance ${i} n${node.id}`);
      });
    }
  };
  for (let step = 0; step < 3000; step++) {
    const x = r.int(0, 100);
    const live = [...h.nodes.values()].filter((node) => !node.crashed);
    if (x < 3) {
      const node = r.pick(live.length ? live : [...h.nodes.values()]);
      if (!node.core.hasPendingProposal && !node.crashed) {
        // A third of the seeds propose a handful of equal values from every node: a proposer must
        // tell its own value from another's equal bytes.
        const value = duplicates ? `d${r.int(0, 3)}` : `v${seed}-${counter++}`;
        const token = h.propose(node.id, value, r.int(50, 5000));
        proposals.set(token, { node: node.id, value });
      }
    } else if (x < 4 && live.length > 1) {
      const node = r.pick(live);
      if (r.chance(0.5)) h.crash(node.id);
      else {
        h.stepOnly({ to: node.id }, 1);
        h.crashBeforePersist(node.id);
      }
    } else if (x < 7) {
      for (const node of h.nodes.values()) if (node.crashed && r.chance(0.5)) h.restart(node.id);
    } else if (x < 8) {
      const node = r.pick([...h.nodes.values()]);
      node.failExecutions = !node.failExecutions && r.chance(0.3);
    } else if (x < 25) {
      h.tick(r.int(1, 200));
      for (const node of h.nodes.values()) {
        if (node.crashed || node.halted) continue;
        const at = node.core.nextTimerAt();
        assert.ok(at === undefined || at > h.nowMs, `seed ${seed}: n${node.id} timer ${at} due at ${h.nowMs}`);
      }
    } else if (h.network.length > 0) {
      const entry = r.pick(h.network);
      if (r.chance(0.1)) h.drop({ where: (m) => m === entry.message, to: entry.to });
      else {
        if (r.chance(0.05)) h.duplicate({ where: (m) => m === entry.message, to: entry.to });
        h.deliver({ where: (m) => m === entry.message, to: entry.to }, 1);
      }
    }
    check();
  }
  // Heal, then every node must reach the same instance with nothing pending.
  for (const node of h.nodes.values()) {
    node.failExecutions = false;
    if (node.crashed) h.restart(node.id);
  }
  // Long enough for an instance holding an accepted value nobody learned to be finished.
  for (let elapsed = 0; elapsed < 10_000; elapsed += 50) {
    h.stabilize();
    h.tick(50);
  }
  h.runUntil(() => {
    const ids = [...h.nodes.keys()];
    const max = Math.max(...ids.map((id) => h.node(id).core.nowInstanceId));
    return ids.every((id) => h.node(id).core.nowInstanceId === max && !h.node(id).core.hasPendingProposal);
  }, 300_000, 20);
  check();
  for (const node of h.nodes.values()) {
    assert.equal(node.halted, null, `seed ${seed} n${node.id} halted ${node.halted?.message}`);
  }
  // Every reported outcome must match what was chosen, and one instance has one owner.
  const owners = new Map<number, string>();
  for (const node of h.nodes.values()) {
    for (const res of node.results) {
      const p = proposals.get(res.token);
      if (!p) continue;
      const o = res.outcome;
      if (o.kind === 'chosen' || o.kind === 'executeFailed') {
        assert.equal(chosenAt.get(o.instanceId), p.value, `seed ${seed} token ${res.token}`);
        const owner = `n${node.id} token ${res.token}`;
        assert.equal(owners.get(o.instanceId), undefined,
          `seed ${seed}: ${owner} and ${owners.get(o.instanceId)} were both told instance ${o.instanceId} is theirs`);
        owners.set(o.instanceId, owner);
      }
      if (o.kind === 'conflict' && !duplicates) {
        assert.notEqual(chosenAt.get(o.instanceId), p.value, `seed ${seed} conflict`);
      }
      if (o.kind === 'timeout' && !o.mayBeChosen && !duplicates) {
        assert.ok(![...chosenAt.values()].includes(p.value), `seed ${seed} timeout false but chosen`);
      }
    }
  }
}

test('randomized harness scripts keep agreement, order and honest outcomes', () => {
  const start = Number(process.env.FUZZ_START ?? 1);
  const count = Number(process.env.FUZZ_COUNT ?? 150);
  for (let seed = start; seed < start + count; seed++) run(seed);
});
