/**
 * Scripted scenarios about learning: catch-up through ask-for-learn, the one-behind shortcut, the
 * chosen notification and its ballot check, "an accept for now+1 means now was chosen", messages
 * for future instances, and a network that duplicates and reorders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreHarness } from '../../src/testing/core-harness.js';
import {
  assertChosen, assertExecuted, durableValues, outcomeOf, proposeAndSettle, settleDropping, settleWithout,
  valuesOf,
} from './helpers.js';

/** The teacher's window as these scenarios count it (the default is larger; its edges show in 21). */
const SMALL_WINDOW = { teachAckLead: 21, learnAckLead: 4 };

/** n1 proposes `count` values while `isolated` nodes are cut off; returns the values. */
function chooseWhileCutOff(h: CoreHarness, count: number, isolated: readonly number[], prefix = 'v'): string[] {
  const values = Array.from({ length: count }, (_, index) => `${prefix}${index}`);
  for (const value of values) proposeAndSettle(h, 1, value, isolated);
  return values;
}

test('a learner far behind catches up: askForLearn -> sendNowInstanceId -> confirm -> acked learnValue stream', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  const values = chooseWhileCutOff(h, 30, [3]);
  assertExecuted(h, [1, 2], values);
  assert.deepEqual(h.executedValues(3), []);

  // Heal. Every node's ask-for-learn timer (2500-2999 ms) fires; only n3 is behind.
  h.tick(3000);
  assert.equal(h.inFlight('askForLearn', { from: 3 }).length, 2);
  h.deliver({ kind: 'askForLearn' });
  // Both peers answer n3 (and each takes its teaching lock); nobody answers the others.
  assert.deepEqual(h.pending({ kind: 'sendNowInstanceId' }).map((entry) => [entry.message.from, entry.to]),
    [[1, 3], [2, 3]]);
  const answer = h.inFlight('sendNowInstanceId', { from: 1 })[0];
  assert.equal(answer?.nowInstanceId, 30);
  assert.equal(answer.instanceId, 0);

  // n3 confirms the first that answered, and only that one.
  h.deliver({ kind: 'sendNowInstanceId' });
  assert.deepEqual(h.pending({ kind: 'confirmAskForLearn' }).map((entry) => [entry.message.from, entry.to]),
    [[3, 1]]);
  assert.equal(h.node(3).core.status().isLearning, true);
  h.deliver({ kind: 'confirmAskForLearn' });

  // n1 streams at most 21 (the ack lead) values ahead of the last ack, each asking for an ack.
  const firstBatch = h.inFlight('learnValue', { from: 1, to: 3 });
  assert.deepEqual(firstBatch.map((message) => message.instanceId), Array.from({ length: 21 }, (_, i) => i));
  assert.ok(firstBatch.every((message) => message.needAck && message.checksum !== 0));
  h.deliver({ kind: 'learnValue' });
  assert.deepEqual(h.executedValues(3), values.slice(0, 21));
  // n3 acks every 4 instances, each ack after the values below it are durable.
  assert.deepEqual(h.inFlight('learnValueAck', { from: 3 }).map((ack) => ack.instanceId), [3, 7, 11, 15, 19]);
  assert.equal(h.inFlight('learnValue').length, 0, 'the teacher waits for acks');

  // The acks open the window; the rest of the stream follows.
  h.deliver({ kind: 'learnValueAck' });
  assert.deepEqual(h.inFlight('learnValue').map((message) => message.instanceId), [21, 22, 23, 24, 25, 26, 27, 28, 29]);
  h.stabilize();
  assertExecuted(h, [1, 2, 3], values);
  for (const id of [2, 3]) {
    for (let instanceId = 0; instanceId < 30; instanceId++) {
      assert.equal(h.node(id).durable.get(instanceId)?.checksum, h.node(1).durable.get(instanceId)?.checksum);
    }
  }
  // Caught up, n3 takes part normally again.
  assertChosen(h, 3, proposeAndSettle(h, 3, 'from-n3'), 30);
  assertExecuted(h, [1, 2, 3], [...values, 'from-n3']);
});

test('the one-behind shortcut: a teacher busy with another learner sends a single unacked learnValue', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  // n3 is cut off for 31 instances (more than one stream window, so its session lasts); n2 takes
  // part in all of them but misses the last notification.
  const values = chooseWhileCutOff(h, 30, [3]);
  h.propose(1, 'v30');
  h.drop({ to: 3 });
  h.deliver({ kind: 'accept' });
  h.deliver({ kind: 'acceptReply' });
  h.drop({ kind: 'chosen', to: 2 });
  h.drop({ to: 3 });
  values.push('v30');
  assert.equal(h.node(1).core.status().nowInstanceId, 31);
  assert.equal(h.node(2).core.status().nowInstanceId, 30, 'n2 is exactly one instance behind n1');

  h.tick(3000);
  // n1 takes n3 as its learner: n3 asks and confirms.
  h.deliver({ kind: 'askForLearn', from: 3, to: 1 });
  h.drop({ kind: 'askForLearn', from: 3 });
  assert.equal(h.inFlight('sendNowInstanceId', { from: 1, to: 3 }).length, 1);
  h.deliver({ kind: 'sendNowInstanceId', from: 1, to: 3 });
  h.deliver({ kind: 'confirmAskForLearn', from: 3, to: 1 });
  // Then n2 asks: n1 is busy, and n2 needs a single value.
  h.deliver({ kind: 'askForLearn', from: 2 });
  assert.equal(h.inFlight('sendNowInstanceId', { from: 1, to: 2 }).length, 0);
  const single = h.inFlight('learnValue', { from: 1, to: 2 });
  assert.equal(single.length, 1);
  assert.equal(single[0]?.instanceId, 30);
  assert.equal(single[0].needAck, false);
  assert.deepEqual(valuesOf(single), ['v30']);
  h.deliver({ kind: 'learnValue', to: 2 });
  assertExecuted(h, [2], values);
  assert.equal(h.inFlight('learnValueAck').length, 0, 'no ack for an unacked value');

  // n3's session goes on undisturbed.
  h.stabilize();
  assertExecuted(h, [1, 2, 3], values);
});

test('when its lock is free, a teacher answers a one-behind node with the normal protocol', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  proposeAndSettle(h, 1, 'v0');
  h.propose(1, 'v1');
  h.deliver({ kind: 'accept' });
  h.deliver({ kind: 'acceptReply' });
  h.drop({ kind: 'chosen' });
  assert.deepEqual([2, 3].map((id) => h.node(id).core.status().nowInstanceId), [1, 1]);
  h.tick(3000);
  h.deliver({ kind: 'askForLearn', from: 2, to: 1 });
  h.drop({ kind: 'askForLearn' });
  assert.equal(h.inFlight('learnValue').length, 0);
  assert.equal(h.inFlight('sendNowInstanceId', { from: 1, to: 2 }).length, 1);
  h.stabilize();
  assertExecuted(h, [1, 2], ['v0', 'v1']);
});

test('chosen notification with another ballot: a node that accepted a different ballot does not learn from ' +
  'it and catches up otherwise', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  const a = h.propose(1, 'A');
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  // n1's own acceptor accepted A under 1.1; its accepts to n2 and n3 are delayed.
  const b = h.propose(3, 'B');
  h.deliver({ kind: 'prepare', from: 3, to: 2 });
  h.deliver({ kind: 'prepareReply', to: 3 });
  h.deliver({ kind: 'accept', from: 3, to: 2 });
  h.deliver({ kind: 'acceptReply', to: 3 });
  assertChosen(h, 3, b, 0);
  h.drop({ from: 3, kind: 'prepare', to: 1 });
  h.drop({ from: 3, kind: 'accept', to: 1 });

  // n3 tells n1 that 1.3 was chosen. n1's acceptor holds 1.1: it must not learn (it would execute A).
  h.deliver({ kind: 'chosen', from: 3, to: 1 });
  assert.deepEqual(h.executedValues(1), []);
  assert.equal(h.node(1).core.status().nowInstanceId, 0);
  assert.equal(h.node(1).durable.get(0)?.accepted.nodeId, 1);
  h.deliver({ kind: 'chosen', from: 3, to: 2 });
  assertExecuted(h, [2, 3], ['B']);

  // n1's accepts are refused; its retries reach peers that moved on and ignore instance 0. It learns B
  // through ask-for-learn, and its proposal ends in conflict.
  h.runUntil(() => h.executedValues(1).length === 1);
  assertExecuted(h, [1], ['B']);
  assert.deepEqual(outcomeOf(h, 1, a), { kind: 'conflict', instanceId: 0 });
  assert.ok(h.sentOfKind('learnValue', { to: 1 }).some((message) => message.instanceId === 0));
  assert.equal(durableValues(h, 1, 1)[0], 'B', 'the learned value replaced what n1 had accepted');
  // n1 asked at once (told 0 was chosen under a ballot it did not accept), so it learned B before
  // any of its accepts for 0 was refused: its first accept for 1 still uses 1.1, is refused (n2 and
  // n3 promised 1.3), and it prepares again after a retry delay, which takes time to pass.
  const again = h.propose(1, 'A');
  h.runUntil(() => outcomeOf(h, 1, again) !== undefined);
  assertChosen(h, 1, again, 1);
  assertExecuted(h, [1, 2, 3], ['B', 'A']);
});

test('an accept for now+1 means now was chosen: a node that missed the chosen message learns from it', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  h.propose(1, 'A');
  h.deliver({ kind: 'prepare' });
  h.deliver({ kind: 'prepareReply' });
  h.deliver({ kind: 'accept' });
  h.deliver({ kind: 'acceptReply' });
  h.drop({ kind: 'chosen', to: 3 });
  h.stabilize();
  assertExecuted(h, [1, 2], ['A']);
  assert.deepEqual(h.executedValues(3), []);
  assert.equal(h.node(3).durable.get(0)?.accepted.nodeId, 1, 'n3 accepted A under 1.1');

  // n1 skips phase 1 for instance 1; its accept for instance 1 reaches n3.
  h.propose(1, 'B');
  h.deliver({ kind: 'accept', to: 3 });
  // n3 learned and executed A, moved on, and then accepted B from the same message.
  assertExecuted(h, [3], ['A']);
  assert.equal(h.node(3).core.status().nowInstanceId, 1);
  const reply = h.inFlight('acceptReply', { from: 3 })[0];
  assert.equal(reply?.instanceId, 1);
  assert.equal(reply.rejectedBy, 0);
  h.stabilize();
  assertExecuted(h, [1, 2, 3], ['A', 'B']);
});

test('messages for a future instance are buffered, then applied once the node gets there', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  h.propose(1, 'A');
  h.deliver({ kind: 'prepare' });
  h.deliver({ kind: 'prepareReply' });
  // n3's accept and notification for instance 0 are delayed; n1 and n2 decide instances 0 and 1.
  const delayed = (): void => {
    h.deliver({ kind: 'accept', to: 2 });
    h.deliver({ kind: 'accept', to: 1 });
    h.deliver({ kind: 'acceptReply' });
    h.deliver({ kind: 'chosen', to: 2 });
  };
  delayed();
  h.propose(1, 'B');
  delayed();
  assertExecuted(h, [1, 2], ['A', 'B']);
  assert.deepEqual(h.pending({ to: 3 }).map((entry) => `${entry.message.kind}#${entry.message.instanceId}`),
    ['accept#0', 'chosen#0', 'accept#1', 'chosen#1']);

  // Instance 1 arrives first: n3 holds it, without answering.
  h.deliver({ to: 3, instanceId: 1 });
  assert.equal(h.node(3).core.status().futureMessages, 2);
  assert.equal(h.pending({ from: 3 }).length, 0);
  assert.deepEqual(h.executedValues(3), []);
  // Then instance 0; deciding it replays the buffered messages.
  h.deliver({ to: 3, instanceId: 0, kind: 'accept' });
  h.deliver({ to: 3, instanceId: 0, kind: 'chosen' });
  assertExecuted(h, [3], ['A', 'B']);
  assert.equal(h.node(3).core.status().futureMessages, 0);
  assert.equal(h.node(3).core.status().nowInstanceId, 2);
  assert.deepEqual(h.inFlight('acceptReply', { from: 3 }).map((message) => message.instanceId), [0, 1]);
  assert.deepEqual(durableValues(h, 3, 2), ['A', 'B']);
});

test('duplicated and reordered delivery is harmless', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  const tokens: [number, number][] = [];
  for (const [id, value] of [[1, 'A'], [1, 'B'], [2, 'C'], [3, 'D'], [1, 'E']] as const) {
    tokens.push([id, h.propose(id, value)]);
    // Every message arrives twice, newest first.
    for (let round = 0; round < 1000 && h.network.length > 0; round++) {
      h.duplicate();
      h.deliverInReverse();
    }
    if (h.network.length > 0 || outcomeOf(h, id, tokens[tokens.length - 1]?.[1] ?? 0) === undefined) {
      h.runUntil(() => outcomeOf(h, id, tokens[tokens.length - 1]?.[1] ?? 0) !== undefined);
    }
  }
  h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 5));
  const order = h.executedValues(1);
  assert.deepEqual([...order].sort(), ['A', 'B', 'C', 'D', 'E']);
  assertExecuted(h, [2, 3], order);
  for (const [id, token] of tokens) {
    const results = h.node(id).results.filter((result) => result.token === token);
    assert.equal(results.length, 1, `one result for token ${token}`);
  }
});

test('a duplicated promise or accept is counted once', () => {
  const h = new CoreHarness({ nodes: 5, timing: SMALL_WINDOW });
  const token = h.propose(1, 'A');
  h.deliver({ kind: 'prepare', to: 2 });
  h.duplicate({ kind: 'prepareReply', from: 2 });
  h.duplicate({ kind: 'prepareReply', from: 2 });
  h.deliver({ kind: 'prepareReply' });
  assert.equal(h.node(1).core.status().proposerPhase, 'preparing', 'n1 and n2 are not a majority of 5');
  assert.equal(h.inFlight('accept').length, 0);
  h.deliver({ kind: 'prepare', to: 3 });
  h.deliver({ kind: 'prepareReply' });
  assert.equal(h.inFlight('accept').length, 4);

  h.deliver({ kind: 'accept', to: 2 });
  h.duplicate({ kind: 'acceptReply' });
  h.deliver({ kind: 'acceptReply' });
  assert.equal(h.inFlight('chosen').length, 0, 'two distinct accepts are not a majority of 5');
  assert.deepEqual(h.executedValues(1), []);
  h.deliver({ kind: 'accept', to: 3 });
  h.deliver({ kind: 'acceptReply' });
  assertChosen(h, 1, token, 0);
  h.stabilize();
  assertExecuted(h, [1, 2, 3, 4, 5], ['A']);
});

test('a learner keeps catching up while new values are chosen during its stream', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  const values = chooseWhileCutOff(h, 25, [3]);
  h.tick(3000);
  h.drop({ kind: 'askForLearn', from: 3, to: 2 });
  h.deliver({ kind: 'askForLearn' });
  h.deliver({ kind: 'sendNowInstanceId' });
  h.deliver({ kind: 'confirmAskForLearn' });
  // Half of the first batch arrives, then three more values are chosen with n3 connected again: it
  // holds their accepts and notifications for later and does not answer them.
  h.deliver({ kind: 'learnValue' }, 10);
  assert.equal(h.node(3).core.status().nowInstanceId, 10);
  for (const value of ['n25', 'n26', 'n27']) {
    h.propose(1, value);
    for (let round = 0; round < 10; round++) {
      h.deliver({ kind: 'accept' });
      h.deliver({ kind: 'acceptReply' });
      h.deliver({ kind: 'chosen' });
    }
    values.push(value);
  }
  assertExecuted(h, [1, 2], values);
  assert.ok(h.node(3).core.status().futureMessages >= 6);
  assert.equal(h.node(3).core.status().nowInstanceId, 10);
  h.stabilize();
  assertExecuted(h, [1, 2, 3], values);
  assert.equal(h.node(3).core.status().futureMessages, 0);
});

test('the teacher crashes mid-stream: the learner later finishes with another teacher', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  const values = chooseWhileCutOff(h, 30, [3]);
  h.tick(3000);
  h.drop({ kind: 'askForLearn', from: 3, to: 2 });
  h.deliver({ kind: 'askForLearn' });
  h.deliver({ kind: 'sendNowInstanceId' });
  h.deliver({ kind: 'confirmAskForLearn' });
  h.deliver({ kind: 'learnValue' }, 8);
  h.crash(1);
  h.drop({ from: 1 });
  assert.equal(h.node(3).core.status().nowInstanceId, 8);
  assert.equal(h.node(3).core.status().isLearning, true);
  // n3 notices nothing arrives any more, asks again, and n2 teaches it the rest.
  h.runUntil(() => h.executedValues(3).length === 30, 30_000);
  assertExecuted(h, [2, 3], values);
  assert.ok(h.sentOfKind('learnValue', { from: 2, to: 3 }).some((message) => message.instanceId === 8));
  // n1 comes back and catches up too.
  h.restart(1);
  h.runUntil(() => h.node(1).core.status().nowInstanceId === 30, 30_000);
  assertExecuted(h, [1, 2, 3], values);
});

test('lost acks stall a stream only until the learner asks again', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  const values = chooseWhileCutOff(h, 50, [3]);
  h.tick(3000);
  h.drop({ kind: 'askForLearn', from: 3, to: 2 });
  h.deliver({ kind: 'askForLearn' });
  h.deliver({ kind: 'sendNowInstanceId' });
  h.deliver({ kind: 'confirmAskForLearn' });
  h.deliver({ kind: 'learnValue' });
  h.drop({ kind: 'learnValueAck' });
  assert.equal(h.node(3).core.status().nowInstanceId, 21, 'the first window arrived');
  assert.equal(h.inFlight('learnValue').length, 0, 'and the teacher waits for acks that were lost');
  // Every ack is lost from now on; each new ask starts a new session from where n3 is.
  const start = h.nowMs;
  while (h.executedValues(3).length < 50 && h.nowMs - start < 60_000) {
    settleDropping(h, { kind: 'learnValueAck' });
    h.tick(5);
  }
  assertExecuted(h, [1, 2, 3], values);
  const confirms = h.sentOfKind('confirmAskForLearn', { from: 3 }).map((message) => message.instanceId);
  assert.deepEqual(confirms, [0, 21, 42], 'one session per window of 21 values');
});

test('a stream delivered twice and in reverse order still teaches every value once, in order', () => {
  const h = new CoreHarness({ nodes: 3, timing: SMALL_WINDOW });
  const values = chooseWhileCutOff(h, 15, [3]);
  h.tick(3000);
  h.drop({ kind: 'askForLearn', from: 3, to: 2 });
  h.deliver({ kind: 'askForLearn' });
  h.deliver({ kind: 'sendNowInstanceId' });
  h.deliver({ kind: 'confirmAskForLearn' });
  assert.equal(h.inFlight('learnValue').length, 15);
  h.duplicate({ kind: 'learnValue' });
  h.deliverInReverse({ kind: 'learnValue' });
  assertExecuted(h, [3], values);
  assert.equal(h.node(3).executed.length, 15, 'each value executed once');
  settleWithout(h, []);
  assertExecuted(h, [1, 2, 3], values);
});

test('a proposer whose own acceptor refused its accept learns its chosen value at once', () => {
  const h = new CoreHarness({ nodes: 5, timing: SMALL_WINDOW });
  const a = h.propose(1, 'A');
  h.deliver({ kind: 'prepare', from: 1 });
  // n5 prepares 1.5 at n1 only: n1's acceptor now refuses n1's own ballot 1.1.
  h.propose(5, 'B');
  h.deliver({ kind: 'prepare', from: 5, to: 1 });
  h.drop({ from: 5 });
  h.drop({ kind: 'prepareReply', to: 5 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  h.deliver({ kind: 'accept', from: 1 });
  const replies = h.inFlight('acceptReply', { to: 1 }).map((reply) => [reply.from, reply.rejectedBy]);
  assert.deepEqual(replies, [[1, 1], [2, 0], [3, 0], [4, 0], [5, 1]]);
  h.deliver({ kind: 'acceptReply', to: 1 });
  // A is chosen by n2, n3 and n4. n1's acceptor holds no vote for 1.1, but n1 counted the majority
  // itself: it records A durably under 1.1 and learns it, even if every notification is lost.
  assert.deepEqual(h.executedValues(1), ['A']);
  assertChosen(h, 1, a, 0);
  const record = h.node(1).durable.get(0);
  assert.deepEqual(record?.accepted, { proposalId: 1, nodeId: 1 });
  assert.equal(record?.promised.nodeId, 5, 'the higher promise is kept');
  h.drop({ kind: 'chosen' });
  // The others learn through catch-up.
  h.runUntil(() => [2, 3, 4, 5].every((id) => h.executedValues(id).length === 1), 10_000);
  assertExecuted(h, [1, 2, 3, 4, 5], ['A']);
});
