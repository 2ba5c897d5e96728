/**
 * Scripted scenarios about proposers and ballots: duels, pre-emption, adoption of accepted values,
 * skip-prepare, retries and timeouts, and messages from outside the membership.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { utf8 } from '../../src/util/bytes.js';
import { SeededRandom } from '../../src/util/random.js';
import {
  assertChosen, assertExecuted, ballotsOf, deliverRandomlyUntil, durableValues, outcomeOf, proposeAndSettle,
  settleWithout, valuesOf,
} from './helpers.js';

test('dueling proposers: one value per instance, the loser gets conflict, retries, same order everywhere', () => {
  const h = new CoreHarness({ nodes: 3 });
  const a = h.propose(1, 'A');
  const b = h.propose(2, 'B');
  // Both start with proposal id 1; node ids break the tie: 1.2 > 1.1.
  assert.deepEqual(ballotsOf(h.inFlight('prepare')), ['1.1', '1.1', '1.2', '1.2']);

  // n3 hears n1 first, then n2; n1 promises n2's higher ballot; n2 refuses n1's.
  h.deliver({ kind: 'prepare', to: 3 });
  h.deliver({ kind: 'prepare', from: 2, to: 1 });
  h.deliver({ kind: 'prepare', from: 1, to: 2 });
  assert.equal(h.inFlight('prepareReply', { from: 2, to: 1 })[0]?.rejectedBy, 1);

  // Both collect a majority of promises (n1: itself and n3 for 1.1; n2: itself, n3 and n1 for 1.2).
  h.deliver({ kind: 'prepareReply' });
  assert.equal(h.node(1).core.status().proposerPhase, 'accepting');
  assert.equal(h.node(2).core.status().proposerPhase, 'accepting');
  assert.deepEqual(valuesOf(h.inFlight('accept', { from: 1 })), ['A', 'A']);
  assert.deepEqual(valuesOf(h.inFlight('accept', { from: 2 })), ['B', 'B']);

  // n1's accept is refused by everyone, its own acceptor included (it promised 1.2).
  h.deliver({ kind: 'accept', from: 1 });
  for (const reply of h.inFlight('acceptReply', { to: 1 })) assert.equal(reply.rejectedBy, 1);
  h.deliver({ kind: 'acceptReply', to: 1 });
  // n2's accept wins; the chosen notification reaches everyone before n1's retry timer fires.
  h.stabilize();
  assertChosen(h, 2, b, 0);
  assert.deepEqual(outcomeOf(h, 1, a), { kind: 'conflict', instanceId: 0 });
  assertExecuted(h, [1, 2, 3], ['B']);

  // The loser retries in the next instance.
  const retry = h.propose(1, 'A');
  h.stabilize();
  assertChosen(h, 1, retry, 1);
  assertExecuted(h, [1, 2, 3], ['B', 'A']);
  for (const id of [1, 2, 3]) assert.deepEqual(durableValues(h, id, 2), ['B', 'A']);
});

test('dueling proposers under random delivery: every value is executed once, in one order, on every node', () => {
  let totalConflicts = 0;
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    const h = new CoreHarness({ nodes: 3, seed });
    const random = new SeededRandom(seed * 7919);
    const wanted = new Map<string, number>([['A', 1], ['B', 2], ['C', 3]]);
    const tokens = new Map<string, number>();
    const conflicts: string[] = [];
    for (const [value, id] of wanted) tokens.set(value, h.propose(id, value));
    const allChosen = (): boolean => {
      for (const [value, id] of wanted) {
        const outcome = outcomeOf(h, id, tokens.get(value) as number);
        if (outcome?.kind === 'conflict') {
          // The caller's retry, as the runtime does it.
          conflicts.push(value);
          tokens.set(value, h.propose(id, value));
          return false;
        }
        if (outcome?.kind !== 'chosen') return false;
      }
      return true;
    };
    deliverRandomlyUntil(h, random, allChosen);
    h.stabilize();
    // Let the nodes that missed a notification catch up.
    h.runUntil(() => [1, 2, 3].every((id) => h.executedValues(id).length === 3));
    const order = h.executedValues(1);
    assert.deepEqual([...order].sort(), ['A', 'B', 'C'], `seed ${seed}`);
    assertExecuted(h, [2, 3], order);
    for (const [value, id] of wanted) {
      const outcome = outcomeOf(h, id, tokens.get(value) as number);
      assert.equal(outcome?.kind === 'chosen' && order[outcome.instanceId], value, `seed ${seed}, value ${value}`);
    }
    totalConflicts += conflicts.length;
  }
  assert.ok(totalConflicts > 0, 'the duels produced conflicts');
});

test('a higher ballot in the middle of an accept phase: the old proposer re-prepares and adopts the value a ' +
  'majority accepted', () => {
  const h = new CoreHarness({ nodes: 3 });
  const a = h.propose(1, 'A');
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  assert.deepEqual(ballotsOf(h.inFlight('accept', { from: 1 })), ['1.1', '1.1']);

  // n3 prepares 1.3 at n2 while n1's accepts are on their way, and gets B accepted by n2 and itself.
  const b = h.propose(3, 'B');
  h.deliver({ kind: 'prepare', from: 3, to: 2 });
  h.deliver({ kind: 'prepareReply', to: 3 });
  h.deliver({ kind: 'accept', from: 3, to: 2 });
  assert.equal(h.node(2).durable.get(0)?.accepted.proposalId, 1);
  assert.equal(h.node(2).durable.get(0)?.accepted.nodeId, 3);

  // n1's accepts arrive late and are refused by the promise of 1.3.
  h.deliver({ kind: 'accept', from: 1, to: 2 });
  h.deliver({ kind: 'accept', from: 1, to: 3 });
  const rejections = h.inFlight('acceptReply', { to: 1 }).filter((reply) => reply.from !== 1);
  assert.deepEqual(rejections.map((reply) => reply.rejectedBy), [1, 1]);
  h.deliver({ kind: 'acceptReply', to: 1 });
  assert.equal(h.inFlight('prepare', { from: 1 }).length, 0, 'no retry before the 10-39 ms delay');

  // After the randomized delay n1 prepares again, above the ballot that refused it.
  h.tick(39);
  assert.equal(h.node(1).core.status().proposalId, 2);
  assert.deepEqual(ballotsOf(h.inFlight('prepare', { from: 1 })), ['2.1', '2.1']);
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  // It adopted B, the value of the highest accepted ballot, over its own A.
  assert.deepEqual(valuesOf(h.inFlight('accept', { from: 1 })), ['B', 'B']);

  h.stabilize();
  assertExecuted(h, [1, 2, 3], ['B']);
  assert.deepEqual(outcomeOf(h, 1, a), { kind: 'conflict', instanceId: 0 });
  assertChosen(h, 3, b, 0);
  const retry = proposeAndSettle(h, 1, 'A');
  assertChosen(h, 1, retry, 1);
  assertExecuted(h, [1, 2, 3], ['B', 'A']);
});

test('a value accepted only by a minority can be replaced by a later ballot', () => {
  const h = new CoreHarness({ nodes: 3 });
  const a = h.propose(1, 'A');
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  // n3 gets 1.3 promised by n2 but B accepted only by itself.
  const b = h.propose(3, 'B');
  h.deliver({ kind: 'prepare', from: 3, to: 2 });
  h.deliver({ kind: 'prepareReply', to: 3 });
  h.drop({ from: 3, kind: 'accept' });
  h.drop({ from: 3, kind: 'prepare' });
  h.drop({ kind: 'acceptReply', to: 3 });
  // n1's accepts are refused by n2 and n3; it prepares 2.1, which only n1 and n2 answer.
  h.deliver({ kind: 'accept', from: 1 });
  h.deliver({ kind: 'acceptReply', to: 1 });
  h.tick(39);
  h.deliver({ kind: 'prepare', from: 1, to: 2 });
  h.drop({ kind: 'prepare', from: 1, to: 3 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  // Neither promise reports B, so n1 keeps its own A (which its own acceptor accepted under 1.1).
  assert.deepEqual(valuesOf(h.inFlight('accept', { from: 1 })), ['A', 'A']);
  h.stabilize();
  assertExecuted(h, [1, 2, 3], ['A']);
  assertChosen(h, 1, a, 0);
  assert.deepEqual(outcomeOf(h, 3, b), { kind: 'conflict', instanceId: 0 });
  assert.equal(durableValues(h, 3, 1)[0], 'A', "n3's minority value was overwritten");
});

test("a proposal pre-empted by adoption in prepare: another node's accepted value is chosen, the proposer " +
  'gets conflict', () => {
  const h = new CoreHarness({ nodes: 3 });
  const a = h.propose(1, 'A');
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  // Only n2 (and n1 itself) accept A; n1 never hears back.
  h.deliver({ kind: 'accept', from: 1, to: 2 });
  h.drop({ kind: 'accept', from: 1, to: 3 });
  h.drop({ kind: 'acceptReply' });

  const b = h.propose(3, 'B');
  h.deliver({ kind: 'prepare', from: 3, to: 2 });
  const promise = h.inFlight('prepareReply', { from: 2, to: 3 })[0];
  assert.equal(promise?.rejectedBy, 0);
  assert.deepEqual(promise.acceptedBallot, { proposalId: 1, nodeId: 1 });
  h.deliver({ kind: 'prepareReply', to: 3 });
  assert.deepEqual(valuesOf(h.inFlight('accept', { from: 3 })), ['A', 'A'], 'n3 adopted A');

  h.stabilize();
  assertExecuted(h, [1, 2, 3], ['A']);
  assert.deepEqual(outcomeOf(h, 3, b), { kind: 'conflict', instanceId: 0 });
  // n1's acceptor accepted A again under 1.3, so n3's chosen notification teaches it: its own value won.
  assertChosen(h, 1, a, 0);
  const retry = proposeAndSettle(h, 3, 'B');
  assertChosen(h, 3, retry, 1);
  assertExecuted(h, [1, 2, 3], ['A', 'B']);
});

test('skip-prepare: a proposer keeps its ballot across instances until someone rejects it', () => {
  const h = new CoreHarness({ nodes: 3 });
  for (const [index, value] of ['v0', 'v1', 'v2'].entries()) {
    assertChosen(h, 1, proposeAndSettle(h, 1, value), index);
  }
  assert.equal(h.sentOfKind('prepare').length, 2, 'one prepare round, to n2 and n3, for instance 0 only');
  assert.deepEqual(h.sentOfKind('prepare').map((message) => message.instanceId), [0, 0]);
  assert.deepEqual(h.sentOfKind('accept', { from: 1 }).map((message) => message.instanceId), [0, 0, 1, 1, 2, 2]);
  assert.ok(ballotsOf(h.sentOfKind('accept')).every((ballot) => ballot === '1.1'));

  // n2 takes over with 1.2: every acceptor, n1's included, now promises 1.2.
  assertChosen(h, 2, proposeAndSettle(h, 2, 'w3'), 3);
  assert.equal(h.node(1).core.status().promised, '1.2');

  // n1 still believes it may skip phase 1: its first attempt is an accept with 1.1, and it is refused.
  const token = h.propose(1, 'v4');
  assert.equal(h.inFlight('prepare', { from: 1 }).length, 0);
  assert.deepEqual(ballotsOf(h.inFlight('accept', { from: 1 })), ['1.1', '1.1']);
  h.deliver({ kind: 'accept' });
  h.deliver({ kind: 'acceptReply' });
  h.tick(39);
  // Then a full round with a ballot above the one that refused it.
  assert.deepEqual(ballotsOf(h.inFlight('prepare', { from: 1 })), ['2.1', '2.1']);
  h.stabilize();
  assertChosen(h, 1, token, 4);
  // And from then on it skips phase 1 again.
  const prepares = h.sentOfKind('prepare').length;
  assertChosen(h, 1, proposeAndSettle(h, 1, 'v5'), 5);
  assert.equal(h.sentOfKind('prepare').length, prepares);
  assertExecuted(h, [1, 2, 3], ['v0', 'v1', 'v2', 'w3', 'v4', 'v5']);
});

test('a proposer whose prepares get no answer retries with the same ballot, doubling the timeout up to 8 s', () => {
  const h = new CoreHarness({ nodes: 3 });
  const token = h.propose(1, 'A');
  const rounds = (): number => h.sentOfKind('prepare', { from: 1 }).length / 2;
  const lose = (): void => {
    h.drop({ kind: 'prepare' });
    h.drop({ kind: 'prepareReply' });
  };
  lose();
  const expectedRetryTimes = [2000, 6000, 14_000, 22_000, 30_000];
  let elapsed = 0;
  for (const [index, at] of expectedRetryTimes.entries()) {
    h.tick(at - 1 - elapsed);
    assert.equal(rounds(), index + 1, `no retry before ${at} ms`);
    h.tick(1);
    elapsed = at;
    assert.equal(rounds(), index + 2, `retry at ${at} ms`);
    lose();
  }
  // Nobody rejected the ballot, so it was reused every time.
  assert.ok(ballotsOf(h.sentOfKind('prepare', { from: 1 })).every((ballot) => ballot === '1.1'));
  assert.equal(outcomeOf(h, 1, token), undefined);
  // The network heals; the next round succeeds.
  h.runUntil(() => outcomeOf(h, 1, token) !== undefined);
  assertChosen(h, 1, token, 0);
  assertExecuted(h, [1, 2, 3], ['A']);
});

test('a rejected round is retried after 10-39 ms with a ballot above the rejecting promise', () => {
  const h = new CoreHarness({ nodes: 3 });
  // n2 gets 1.2 promised by n3 and itself, then goes quiet.
  h.propose(2, 'B');
  h.deliver({ kind: 'prepare', from: 2, to: 3 });
  h.drop({ from: 2 });
  h.drop({ to: 2 });
  h.drop({ from: 3, to: 2 });

  const token = h.propose(1, 'A');
  h.deliver({ kind: 'prepare', from: 1 });
  assert.deepEqual(h.inFlight('prepareReply', { to: 1 }).map((reply) => [reply.from, reply.rejectedBy]),
    [[1, 0], [2, 1], [3, 1]]);
  h.deliver({ kind: 'prepareReply', to: 1 });
  h.tick(9);
  assert.equal(h.sentOfKind('prepare', { from: 1 }).length, 2, 'not before 10 ms');
  h.tick(30);
  assert.deepEqual(ballotsOf(h.inFlight('prepare', { from: 1 })), ['2.1', '2.1']);
  h.stabilize();
  assertChosen(h, 1, token, 0);
});

test('commit timeout: mayBeChosen is false only for a value that never left, and a value that may be chosen ' +
  'can indeed be chosen later', () => {
  const h = new CoreHarness({ nodes: 3 });
  // n3 is cut off while instances 0-2 are chosen, then hears of instance 2: it knows it is behind.
  for (const value of ['v0', 'v1']) proposeAndSettle(h, 1, value, [3]);
  h.propose(1, 'v2');
  settleWithout(h, []);
  h.drop({ to: 3 });
  assert.equal(h.node(3).core.status().nowInstanceId, 0);
  assert.ok(h.node(3).core.status().highestSeenInstanceId >= 2);

  // A node two or more instances behind does not start proposals: the value never leaves.
  const never = h.propose(3, 'X', 100);
  assert.equal(h.pending({ from: 3, kind: 'prepare' }).length + h.pending({ from: 3, kind: 'accept' }).length, 0);
  h.drop({ from: 3 });
  h.tick(100);
  assert.deepEqual(outcomeOf(h, 3, never), { kind: 'timeout', mayBeChosen: false });

  // On n1, a proposal whose prepares are lost times out; its value did leave.
  const lost = h.propose(1, 'Y', 500);
  h.drop();
  h.tick(500);
  assert.deepEqual(outcomeOf(h, 1, lost), { kind: 'timeout', mayBeChosen: true });
  // The next proposal on n1 in the same instance still carries the sticky value Y (PhxPaxos #186):
  // Y is chosen, so "may be chosen" was the honest answer, and Z ends in conflict.
  const next = h.propose(1, 'Z');
  settleWithout(h, [3]);
  assert.deepEqual(outcomeOf(h, 1, next), { kind: 'conflict', instanceId: 3 });
  assertExecuted(h, [1, 2], ['v0', 'v1', 'v2', 'Y']);
  assertChosen(h, 1, proposeAndSettle(h, 1, 'Z', [3]), 4);
});

test("a non-member's messages are ignored", () => {
  const h = new CoreHarness({ nodes: 3 });
  const stranger = 9;
  h.inject(1, { kind: 'prepare', from: stranger, instanceId: 0, ballot: { proposalId: 100, nodeId: stranger } });
  h.inject(2, {
    kind: 'accept', from: stranger, instanceId: 0, ballot: { proposalId: 100, nodeId: stranger }, value: utf8('evil'),
    lastChecksum: 0, previousBallot: { proposalId: 0, nodeId: 0 },
  });
  h.deliver();
  assert.equal(h.network.length, 0, 'no reply to a non-member');
  assert.equal(h.node(1).writes.length + h.node(2).writes.length, 0, 'nothing persisted');
  assert.equal(h.node(1).core.status().promised, '0.0');
  assert.equal(h.node(2).core.status().promised, '0.0');

  // A promise from a non-member does not count towards a majority.
  const token = h.propose(1, 'A');
  h.deliver({ kind: 'prepareReply', to: 1 });
  h.inject(1, {
    kind: 'prepareReply', from: stranger, instanceId: 0, ballot: { proposalId: 1, nodeId: 1 }, rejectedBy: 0,
    acceptedBallot: { proposalId: 99, nodeId: stranger }, acceptedValue: utf8('evil'),
  });
  h.deliver({ from: stranger });
  assert.equal(h.node(1).core.status().proposerPhase, 'preparing');
  assert.equal(h.inFlight('accept').length, 0);
  // The members' low ballots still work, and the stranger's value was not adopted.
  h.stabilize();
  assertChosen(h, 1, token, 0);
  assertExecuted(h, [1, 2, 3], ['A']);
});

test('skip-prepare after losing an instance: a peer holding the losing value does not learn it from the ' +
  "winner's next accept", () => {
  const h = new CoreHarness({ nodes: 5 });
  // n1 holds promises for 1.1 from everyone and gets W accepted by itself and n2 only.
  const w = h.propose(1, 'W');
  h.deliver({ kind: 'prepare', from: 1 });
  h.deliver({ kind: 'prepareReply', to: 1 });
  h.deliver({ kind: 'accept', from: 1, to: 2 });
  h.drop({ kind: 'accept', from: 1 });
  h.drop({ kind: 'acceptReply' });

  // n5 prepares 1.5 at n3, n4 and itself (none accepted anything), and gets V chosen there.
  const v = h.propose(5, 'V');
  h.drop({ kind: 'prepare', from: 5, to: 1 });
  h.drop({ kind: 'prepare', from: 5, to: 2 });
  h.deliver({ kind: 'prepare', from: 5 });
  h.deliver({ kind: 'prepareReply', to: 5 });
  assert.deepEqual(valuesOf(h.inFlight('accept', { from: 5 })), ['V', 'V', 'V', 'V']);
  // n1 also accepts V under 1.5 (so n5's notification teaches it); n2 hears nothing of it.
  h.drop({ kind: 'accept', from: 5, to: 2 });
  h.deliver({ kind: 'accept', from: 5 });
  h.deliver({ kind: 'acceptReply', to: 5 });
  h.drop({ kind: 'chosen', to: 2 });
  h.deliver({ kind: 'chosen' });
  assertExecuted(h, [1, 3, 4, 5], ['V']);
  assertChosen(h, 5, v, 0);
  assert.deepEqual(outcomeOf(h, 1, w), { kind: 'conflict', instanceId: 0 });
  assert.equal(durableValues(h, 2, 1)[0], 'W', 'n2 still holds the losing value W under 1.1');

  // n1 proposes in instance 1. Nobody ever refused 1.1, so PhxPaxos would reuse it without a prepare.
  h.propose(1, 'X');
  const toN2 = [...h.inFlight('prepare', { to: 2 }), ...h.inFlight('accept', { to: 2 })];
  assert.ok(toN2.length > 0);
  h.deliver({ to: 2 });
  // Whatever n1 sent, n2 must not conclude that W was chosen in instance 0.
  assert.ok(!h.executedValues(2).includes('W'), `n2 executed the losing value\n${h.trace.join('\n')}`);
  assert.equal(h.node(2).halted, null);
  h.runUntil(() => [1, 2, 3, 4, 5].every((id) => h.executedValues(id).length >= 2));
  for (const id of [1, 2, 3, 4, 5]) assert.deepEqual(h.executedValues(id).slice(0, 2), ['V', 'X'], `n${id}`);
});
