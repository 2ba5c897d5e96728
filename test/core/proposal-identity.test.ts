// A proposer recognises its own value among the chosen ones by the identity the value carries,
// never by equal bytes: two proposals of the same bytes (from two nodes, from one node's sticky
// value and a new caller, or from two lives of one node) must not both be told "chosen" for one
// execution. Each scenario is also run with the ownByBytes canary, which must reproduce the bug.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CoreFaults } from '../../src/core/config.js';
import {
  isProposal, PROPOSAL_HEADER_BYTES, proposalBody, proposalIdentityOf, wrapProposal, type ProposalIdentity,
} from '../../src/core/proposal-identity.js';
import type { ProposalOutcome } from '../../src/core/ready.js';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { utf8 } from '../../src/util/bytes.js';
import { text } from './fixtures.js';

const IDENTITY: ProposalIdentity = {
  nodeId: 7, incarnation: { high: 0xdeadbeef, low: 42 }, startPromise: 2 ** 35 + 9, sequence: 2 ** 40 + 3,
};

describe('proposal identity envelope', () => {
  test('wraps, reads back and strips', () => {
    const wrapped = wrapProposal(IDENTITY, utf8('body'));
    assert.equal(wrapped.length, PROPOSAL_HEADER_BYTES + 4);
    assert.deepEqual(proposalIdentityOf(wrapped), IDENTITY);
    assert.equal(text(proposalBody(wrapped)), 'body');
    assert.equal(isProposal(wrapped, IDENTITY), true);
  });

  test('any difference in node, incarnation, start promise or sequence is another proposal', () => {
    const wrapped = wrapProposal(IDENTITY, utf8('same bytes'));
    const others: ProposalIdentity[] = [
      { ...IDENTITY, nodeId: 8 },
      { ...IDENTITY, incarnation: { high: 0xdeadbeef, low: 43 } },
      { ...IDENTITY, incarnation: { high: 0, low: 42 } },
      { ...IDENTITY, startPromise: IDENTITY.startPromise + 1 },
      { ...IDENTITY, startPromise: 9 },
      { ...IDENTITY, sequence: IDENTITY.sequence + 1 },
      { ...IDENTITY, sequence: 3 },
    ];
    for (const other of others) assert.equal(isProposal(wrapped, other), false, JSON.stringify(other));
  });

  test('a value without an envelope belongs to no proposal and is its own body', () => {
    for (const bare of [new Uint8Array(0), utf8('x'), new Uint8Array(PROPOSAL_HEADER_BYTES)]) {
      assert.equal(proposalIdentityOf(bare), undefined);
      assert.equal(isProposal(bare, IDENTITY), false);
      assert.equal(proposalBody(bare), bare);
    }
  });
});

function outcome(harness: CoreHarness, node: number, token: number): ProposalOutcome | undefined {
  return harness.resultFor(node, token)?.outcome;
}

/** How many proposals were told "chosen" at `instanceId`, over every node. */
function successesAt(harness: CoreHarness, instanceId: number, nodes: readonly number[]): number {
  let count = 0;
  for (const id of nodes) {
    for (const result of harness.node(id).results) {
      if (result.outcome.kind === 'chosen' && result.outcome.instanceId === instanceId) count++;
    }
  }
  return count;
}

function harness(faults?: CoreFaults): CoreHarness {
  return new CoreHarness({ nodes: 3, ...(faults === undefined ? {} : { faults }) });
}

/** Node 1's 'x' loses its prepare; node 2's 'x' is chosen. */
function twoNodesSameBytes(cluster: CoreHarness): { mine: number; theirs: number } {
  const mine = cluster.propose(1, 'x');
  cluster.drop({ kind: 'prepare', from: 1 });
  const theirs = cluster.propose(2, 'x');
  cluster.stabilize();
  return { mine, theirs };
}

/** Node 1's first 'x' times out after its accepts left; a second caller's 'x' then binds to the same instance. */
function stickyValueSameBytes(cluster: CoreHarness): { first: number; second: number } {
  const first = cluster.propose(1, 'x', 500);
  cluster.deliver({ kind: 'prepare' });
  cluster.deliver({ kind: 'prepareReply' });
  cluster.drop({ kind: 'accept' });
  cluster.tick(500);
  const second = cluster.propose(1, 'x');
  cluster.runUntil(() => cluster.node(1).core.nowInstanceId > 0);
  return { first, second };
}

/**
 * Node 1's 'x' is accepted by a majority, node 1 restarts before learning it, and proposes 'x'
 * again; with `sameIncarnation` the new life draws the old life's random bits (a reused seed).
 */
function twoLivesSameBytes(cluster: CoreHarness, sameIncarnation = false): { earlier: number; later: number } {
  const earlier = cluster.propose(1, 'x');
  cluster.deliver({ kind: 'prepare' });
  cluster.deliver({ kind: 'prepareReply' });
  cluster.deliver({ kind: 'accept' });
  cluster.drop({ kind: 'acceptReply' });
  cluster.crash(1);
  cluster.restart(1, sameIncarnation ? cluster.node(1).incarnation : undefined);
  const later = cluster.propose(1, 'x');
  cluster.runUntil(() => cluster.node(1).core.nowInstanceId > 0);
  return { earlier, later };
}

describe('my value was chosen: decided by identity', () => {
  test('two nodes propose the same bytes: only the winner is told chosen', () => {
    const cluster = harness();
    const { mine, theirs } = twoNodesSameBytes(cluster);
    for (const id of [1, 2, 3]) assert.deepEqual(cluster.executedValues(id), ['x']);
    assert.equal(outcome(cluster, 2, theirs)?.kind, 'chosen');
    assert.deepEqual(outcome(cluster, 1, mine), { kind: 'conflict', instanceId: 0 });
    assert.equal(successesAt(cluster, 0, [1, 2, 3]), 1);
  });

  test('a new caller whose bytes equal the sticky value of a timed-out proposal is not told chosen', () => {
    const cluster = harness();
    const { first, second } = stickyValueSameBytes(cluster);
    assert.deepEqual(outcome(cluster, 1, first), { kind: 'timeout', mayBeChosen: true });
    assert.deepEqual(cluster.executedValues(1), ['x'], 'the timed-out proposal was chosen, once');
    assert.deepEqual(outcome(cluster, 1, second), { kind: 'conflict', instanceId: 0 });
  });

  test('a value from an earlier life of the node is not the new life\'s proposal', () => {
    const cluster = harness();
    const { later } = twoLivesSameBytes(cluster);
    assert.deepEqual(cluster.executedValues(2), ['x']);
    assert.deepEqual(outcome(cluster, 1, later), { kind: 'conflict', instanceId: 0 });
    assert.equal(successesAt(cluster, 0, [1, 2, 3]), 0, 'the earlier life\'s caller is gone; nobody else owns it');
  });

  test('two lives with the same random bits differ by the promise each began with', () => {
    const cluster = harness();
    const { later } = twoLivesSameBytes(cluster, true);
    assert.deepEqual(cluster.executedValues(2), ['x']);
    assert.deepEqual(outcome(cluster, 1, later), { kind: 'conflict', instanceId: 0 });
  });

  test('the ownByBytes canary reproduces the lost write in every scenario', () => {
    const faults: CoreFaults = { ownByBytes: true };
    const nodes = harness(faults);
    twoNodesSameBytes(nodes);
    assert.equal(successesAt(nodes, 0, [1, 2, 3]), 2, 'two successes for one execution');
    const sticky = harness(faults);
    const { second } = stickyValueSameBytes(sticky);
    assert.equal(outcome(sticky, 1, second)?.kind, 'chosen');
    const lives = harness(faults);
    const { later } = twoLivesSameBytes(lives);
    assert.equal(outcome(lives, 1, later)?.kind, 'chosen');
  });
});
