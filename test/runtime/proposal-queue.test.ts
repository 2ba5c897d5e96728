import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PaxosError } from '../../src/errors.js';
import { ProposalQueue, type PendingProposal, type ProposeSuccess } from '../../src/runtime/proposal-queue.js';
import { utf8 } from '../../src/util/bytes.js';

interface Tracked {
  readonly proposal: PendingProposal;
  readonly resolved: ProposeSuccess[];
  readonly rejected: PaxosError[];
}

function pending(name: string, deadline: number): Tracked {
  const resolved: ProposeSuccess[] = [];
  const rejected: PaxosError[] = [];
  const proposal: PendingProposal = {
    value: utf8(name), context: name, deadline, attempts: 0,
    resolve: (success) => resolved.push(success), reject: (error) => rejected.push(error),
  };
  return { proposal, resolved, rejected };
}

test('a full queue refuses more (push returns false), and shift is first in, first out', () => {
  const queue = new ProposalQueue(2);
  const [a, b, c] = [pending('a', 100), pending('b', 100), pending('c', 100)];
  assert.equal(queue.push(a.proposal), true);
  assert.equal(queue.push(b.proposal), true);
  assert.equal(queue.push(c.proposal), false);
  assert.equal(queue.length, 2);
  assert.equal(queue.shift(), a.proposal);
  assert.equal(queue.push(c.proposal), true);
  assert.deepEqual([queue.shift(), queue.shift(), queue.shift()], [b.proposal, c.proposal, undefined]);
});

test('a retried proposal goes to the front, even when the queue is full', () => {
  const queue = new ProposalQueue(1);
  const [a, retried] = [pending('a', 100), pending('retried', 100)];
  queue.push(a.proposal);
  queue.pushFront(retried.proposal);
  assert.equal(queue.length, 2);
  assert.equal(queue.shift(), retried.proposal);
});

test('expire rejects every proposal whose deadline passed with TIMEOUT, mayBeChosen=false', () => {
  const queue = new ProposalQueue(10);
  const early = pending('early', 100);
  const exact = pending('exact', 150);
  const late = pending('late', 151);
  for (const tracked of [early, late, exact]) queue.push(tracked.proposal);
  assert.equal(queue.earliestDeadline(), 100);
  queue.expire(150);
  for (const tracked of [early, exact]) {
    assert.equal(tracked.rejected.length, 1);
    const error = tracked.rejected[0];
    assert.ok(error instanceof PaxosError);
    assert.equal(error.code, 'TIMEOUT');
    assert.equal(error.mayBeChosen, false);
    assert.equal(error.retryable, true);
  }
  assert.deepEqual(late.rejected, []);
  assert.equal(queue.length, 1);
  assert.equal(queue.earliestDeadline(), 151);
  assert.equal(queue.shift(), late.proposal);
  assert.equal(queue.earliestDeadline(), undefined);
});

test('rejectAll empties the queue, each with a fresh error', () => {
  const queue = new ProposalQueue(10);
  const [a, b] = [pending('a', 100), pending('b', 100)];
  queue.push(a.proposal);
  queue.push(b.proposal);
  queue.rejectAll(() => new PaxosError('STOPPED', 'stopped'));
  assert.equal(queue.length, 0);
  assert.equal(a.rejected[0]?.code, 'STOPPED');
  assert.equal(b.rejected[0]?.code, 'STOPPED');
  assert.notEqual(a.rejected[0], b.rejected[0]);
});
