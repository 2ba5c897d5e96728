/**
 * Scripted scenarios about crashes and restarts: state lost before it reached the disk, ballots
 * after a restart, a whole cluster restarting, and clusters with and without a live majority.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { utf8 } from '../../src/util/bytes.js';
import {
  assertChosen, assertExecuted, durableValues, outcomeOf, proposeAndSettle, proposeAndWait, proposeUntilChosen,
  valuesOf,
} from './helpers.js';

test('a promise lost in a crash before it was persisted was never counted; a persisted one survives', () => {
  const h = new CoreHarness({ nodes: 3 });
  const a = h.propose(1, 'A');

  // n2 receives the prepare and promises in memory, then crashes before the write: its reply, which
  // may only leave after the write, is lost with it.
  h.stepOnly({ kind: 'prepare', to: 2 });
  assert.equal(h.node(2).core.status().promised, '1.1');
  h.crash(2);
  assert.equal(h.pending({ from: 2 }).length, 0, 'the promise never left n2');
  assert.equal(h.node(2).durable.size, 0);
  h.restart(2);
  assert.equal(h.node(2).core.status().promised, '0.0', 'the unpersisted promise is gone');

  // n3 promises durably; it crashes with its reply still in the network.
  h.deliver({ kind: 'prepare', to: 3 });
  h.crash(3);
  h.restart(3);
  assert.equal(h.node(3).core.status().promised, '1.1', 'the persisted promise survived the crash');
  assert.ok(h.node(3).core.status().proposalId > 1, "n3's own proposer starts above the ballot it promised");

  // n1 counts itself and n3 (whose reply was durable), and gets A accepted by the same two nodes.
  h.deliver({ kind: 'prepareReply', to: 1 });
  assert.equal(h.node(1).core.status().proposerPhase, 'accepting');
  h.deliver({ kind: 'accept', to: 3 });
  h.drop({ kind: 'accept', to: 2 });
  h.drop({ kind: 'acceptReply' });

  // n2, which forgot its promise to 1.1, proposes B. Whatever it forgot, it cannot undo A: the two
  // nodes that accepted A are a majority, so n2 must find A and adopt it.
  const b = h.propose(2, 'B');
  h.runUntil(() => outcomeOf(h, 2, b) !== undefined && outcomeOf(h, 1, a) !== undefined);
  assert.deepEqual(outcomeOf(h, 2, b), { kind: 'conflict', instanceId: 0 });
  assertChosen(h, 1, a, 0);
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 1));
  assertExecuted(h, [1, 2, 3], ['A']);
});

test('an accept lost in a crash before it was persisted is not counted, and another value may win', () => {
  const h = new CoreHarness({ nodes: 3 });
  const a = h.propose(1, 'A');
  h.deliver({ kind: 'prepare' });
  h.deliver({ kind: 'prepareReply' });
  // n2 takes the accept in memory and crashes before writing it; n3's copy is lost.
  h.stepOnly({ kind: 'accept', to: 2 });
  h.crash(2);
  h.drop({ kind: 'accept', to: 3 });
  h.restart(2);
  assert.equal(h.node(2).durable.get(0)?.value.length ?? 0, 0);
  assert.deepEqual(h.node(2).durable.get(0)?.accepted ?? { proposalId: 0, nodeId: 0 }, { proposalId: 0, nodeId: 0 });
  h.deliver({ kind: 'acceptReply', to: 1 });
  assert.equal(h.sentOfKind('chosen').length, 0, 'n1 has only its own accept: A is not chosen');

  // n3 proposes B above 1.1 at n2 and itself: neither accepted anything durable, so B may be chosen.
  const b = h.propose(3, 'B');
  h.deliver({ kind: 'prepare', from: 3, to: 2 });
  h.deliver({ kind: 'prepareReply', to: 3 });
  h.drop({ kind: 'prepare', from: 3, to: 1 });
  h.stabilize();
  assertChosen(h, 3, b, 0);
  h.runUntil(() => outcomeOf(h, 1, a) !== undefined);
  assert.deepEqual(outcomeOf(h, 1, a), { kind: 'conflict', instanceId: 0 });
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 1));
  assertExecuted(h, [1, 2, 3], ['B']);
});

test('a restarted proposer never reuses a ballot: it starts above every ballot it used before', () => {
  const h = new CoreHarness({ nodes: 3 });
  // n1 and n2 take turns, so n1's ballot climbs through rejections: 1.1 (refused), 2.1, then 4.1.
  for (const [id, value] of [[2, 'b0'], [1, 'a1'], [2, 'b2'], [1, 'a3']] as const) {
    assert.equal(proposeAndWait(h, id, value).kind, 'chosen', value);
  }
  const used = [...h.sentOfKind('prepare', { from: 1 }), ...h.sentOfKind('accept', { from: 1 })]
    .map((message) => message.ballot.proposalId);
  const highestUsed = Math.max(...used);
  assert.ok(highestUsed >= 3, `n1 used ballots ${[...new Set(used)].join(', ')}`);

  h.crash(1);
  h.restart(1);
  const restartedId = h.node(1).core.status().proposalId;
  assert.ok(restartedId > highestUsed, `restarted at ${restartedId}, used up to ${highestUsed}`);

  const before = h.sent.length;
  const token = h.propose(1, 'a4');
  h.runUntil(() => outcomeOf(h, 1, token) !== undefined);
  const after = h.sent.slice(before).map((entry) => entry.message)
    .filter((message) => message.from === 1 && (message.kind === 'prepare' || message.kind === 'accept'));
  assert.ok(after.length > 0);
  for (const message of after) {
    assert.ok('ballot' in message && message.ballot.proposalId > highestUsed, JSON.stringify(message));
  }
  assert.equal(after[0]?.kind, 'prepare', 'a restarted proposer runs phase 1 first');
  // n1 resumed at its newest record, instance 3, and first re-decided it (finding a3 there).
  assert.deepEqual(outcomeOf(h, 1, token), { kind: 'conflict', instanceId: 3 });
  assert.equal(proposeUntilChosen(h, 1, 'a4'), 4);
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 5));
  assertExecuted(h, [1, 2, 3], ['b0', 'a1', 'b2', 'a3', 'a4']);
});

test('restarting every node preserves everything chosen and re-executes it in order', () => {
  const h = new CoreHarness({ nodes: 3 });
  const values = ['v0', 'v1', 'v2', 'v3', 'v4'];
  for (const [index, value] of values.entries()) assert.equal(proposeUntilChosen(h, 1 + (index % 3), value), index);
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 5));
  assertExecuted(h, [1, 2, 3], values);
  const checksums = [0, 1, 2, 3, 4].map((instanceId) => h.node(1).durable.get(instanceId)?.checksum);

  for (const id of [1, 2, 3]) h.crash(id);
  for (const id of [1, 2, 3]) h.restart(id);
  // A node resumes at its newest record, which it treats as undecided; everything below is replayed.
  for (const id of [1, 2, 3]) {
    assert.equal(h.node(id).core.status().nowInstanceId, 4, `n${id}`);
    assert.deepEqual(h.executedValues(id), values.slice(0, 4), `n${id} replayed`);
  }

  // A new proposal first re-decides instance 4 (and finds v4 there), then goes into instance 5.
  const first = proposeAndWait(h, 2, 'after');
  assert.deepEqual(first, { kind: 'conflict', instanceId: 4 });
  assert.equal(proposeUntilChosen(h, 2, 'after'), 5);
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 6));
  assertExecuted(h, [1, 2, 3], [...values, 'after']);
  for (const id of [1, 2, 3]) {
    assert.deepEqual(durableValues(h, id, 6), [...values, 'after'], `n${id}`);
    for (const [instanceId, checksum] of checksums.entries()) {
      assert.equal(h.node(id).durable.get(instanceId)?.checksum, checksum, `n${id} #${instanceId}`);
    }
  }
});

test('a 5-node cluster tolerates 2 crashed nodes, which catch up after restart', () => {
  const h = new CoreHarness({ nodes: 5 });
  // n5 leads first, then crashes with n4.
  assertChosen(h, 5, proposeAndSettle(h, 5, 'v0'), 0);
  h.crash(4);
  h.crash(5);
  const values = ['v0'];
  for (const [index, id] of [1, 2, 3, 1, 1].entries()) {
    const value = `v${index + 1}`;
    assert.equal(proposeUntilChosen(h, id, value), index + 1, value);
    values.push(value);
  }
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === values.length));
  assertExecuted(h, [1, 2, 3], values);

  h.restart(4);
  h.restart(5);
  h.runUntil(() => [4, 5].every((id) => h.executedValues(id).length === values.length));
  assertExecuted(h, [1, 2, 3, 4, 5], values);
  // The restarted former leader takes part in new instances.
  assert.equal(proposeUntilChosen(h, 5, 'v6'), 6);
  h.runUntil(() => [1, 2, 3, 4, 5].every((id) => h.executedValues(id).length === 7));
});

test('with 3 of 5 nodes down nothing is chosen; progress resumes when one comes back', () => {
  const h = new CoreHarness({ nodes: 5 });
  assertChosen(h, 1, proposeAndSettle(h, 1, 'v0'), 0);
  for (const id of [3, 4, 5]) h.crash(id);
  const token = h.propose(1, 'v1', 120_000);
  const sentBefore = h.sent.length;
  for (let elapsed = 0; elapsed < 30_000; elapsed += 100) {
    h.stabilize();
    h.tick(100);
  }
  h.stabilize();
  assert.equal(outcomeOf(h, 1, token), undefined, 'no outcome without a majority');
  assertExecuted(h, [1, 2], ['v0']);
  const retries = h.sent.slice(sentBefore)
    .filter((entry) => entry.message.from === 1 && entry.message.kind === 'prepare' && entry.to === 3);
  assert.ok(retries.length >= 3, `n1 keeps retrying (${retries.length} prepares to n3)`);

  h.restart(3);
  h.runUntil(() => outcomeOf(h, 1, token) !== undefined);
  assertChosen(h, 1, token, 1);
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 2));
  assertExecuted(h, [1, 2, 3], ['v0', 'v1']);
  h.restart(4);
  h.restart(5);
  h.runUntil(() => [4, 5].every((id) => h.executedValues(id).length === 2));
  assertExecuted(h, [1, 2, 3, 4, 5], ['v0', 'v1']);
});

test('a proposer crashes after its accepts left but before its own accept was written', () => {
  const h = new CoreHarness({ nodes: 3 });
  assertChosen(h, 1, proposeAndSettle(h, 1, 'v0'), 0);
  const n1 = h.node(1);
  // n1 skips phase 1 for instance 1. Its accepts leave before its own write (ready.ts step 1), and it
  // crashes right then.
  assert.equal(n1.core.propose(utf8('A'), 1000, 60_000), 'accepted');
  h.crashBeforePersist(1);
  assert.deepEqual(valuesOf(h.inFlight('accept', { from: 1 })), ['A', 'A']);
  assert.equal(n1.durable.get(1), undefined, "n1's own accept never reached its disk");
  // n2 and n3 accept A: it is chosen, though nobody knows it yet.
  h.deliver({ kind: 'accept' });
  h.drop({ kind: 'acceptReply' });

  h.restart(1);
  assert.ok(n1.core.status().proposalId > 1);
  // Whatever the cluster proposes next, instance 1 keeps A.
  for (const [id, value] of [[1, 'B'], [2, 'C']] as const) proposeUntilChosen(h, id, value);
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 4));
  assert.deepEqual(h.executedValues(1).slice(0, 2), ['v0', 'A']);
  assertExecuted(h, [2, 3], h.executedValues(1));
  assert.deepEqual([...h.executedValues(1)].sort(), ['A', 'B', 'C', 'v0']);
});

test('a learner crashes mid-stream and resumes from what it had written', () => {
  const h = new CoreHarness({ nodes: 3 });
  const values = Array.from({ length: 20 }, (_, index) => `v${index}`);
  for (const value of values) proposeAndSettle(h, 1, value, [3]);
  h.tick(3000);
  h.drop({ kind: 'askForLearn', from: 3, to: 2 });
  h.deliver({ kind: 'askForLearn' });
  h.deliver({ kind: 'sendNowInstanceId' });
  h.deliver({ kind: 'confirmAskForLearn' });
  h.deliver({ kind: 'learnValue' }, 12);
  assert.equal(h.node(3).core.status().nowInstanceId, 12);
  h.crash(3);
  h.drop({ to: 3 });
  h.restart(3);
  // It resumes at its newest record (instance 11, treated as undecided) with 0-10 replayed.
  assert.equal(h.node(3).core.status().nowInstanceId, 11);
  assert.deepEqual(h.executedValues(3), values.slice(0, 11));
  h.runUntil(() => h.executedValues(3).length === 20, 30_000);
  assertExecuted(h, [1, 2, 3], values);
  for (let instanceId = 0; instanceId < 20; instanceId++) {
    assert.equal(h.node(3).durable.get(instanceId)?.checksum, h.node(1).durable.get(instanceId)?.checksum);
  }
});
