import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PaxosError } from '../../src/errors.js';
import { ProposalQueue, settle, type PendingProposal, type ProposeSuccess } from '../../src/runtime/proposal-queue.js';
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
    value: utf8(name), context: name, deadline, attempts: 0, settled: false,
    resolve: (success) => resolved.push(success), reject: (error) => rejected.push(error),
  };
  return { proposal, resolved, rejected };
}

const ROOMY = { maxCount: 100, maxBytes: 1 << 20 };
const ONE_AT_A_TIME = { maxCount: 1, maxBytes: 1 << 20 };

test('a full queue (by count) refuses more, and batches come out first in, first out', () => {
  const queue = new ProposalQueue({ maxCount: 2, maxBytes: 1 << 20 });
  const [a, b, c] = [pending('a', 100), pending('b', 100), pending('c', 100)];
  assert.equal(queue.push(a.proposal), undefined);
  assert.equal(queue.push(b.proposal), undefined);
  assert.match(queue.push(c.proposal) ?? '', /2 proposals are waiting/);
  assert.equal(queue.length, 2);
  assert.deepEqual(queue.takeBatch(ONE_AT_A_TIME), [a.proposal]);
  assert.equal(queue.push(c.proposal), undefined);
  assert.deepEqual(queue.takeBatch(ROOMY), [b.proposal, c.proposal]);
  assert.deepEqual(queue.takeBatch(ROOMY), []);
});

test('the byte limit refuses a value that does not fit, but an empty queue takes any one value', () => {
  const queue = new ProposalQueue({ maxCount: 100, maxBytes: 10 });
  const big = pending('x'.repeat(25), 100);
  assert.equal(queue.push(big.proposal), undefined, 'alone, a value larger than the limit is admitted');
  assert.match(queue.push(pending('a', 100).proposal) ?? '', /25 bytes of proposals are waiting/);
  assert.deepEqual(queue.takeBatch(ROOMY), [big.proposal]);
  assert.equal(queue.bytes, 0);
  for (const name of ['aaaa', 'bbbb']) assert.equal(queue.push(pending(name, 100).proposal), undefined);
  assert.match(queue.push(pending('cccc', 100).proposal) ?? '', /8 bytes/);
  assert.equal(queue.bytes, 8);
});

test('a batch stops at its count and byte limits, and always takes at least one', () => {
  const queue = new ProposalQueue(ROOMY);
  const values = ['aaaa', 'bbbb', 'cccc', 'dddd', 'e'.repeat(50)].map((name) => pending(name, 100));
  for (const tracked of values) queue.push(tracked.proposal);
  assert.deepEqual(queue.takeBatch({ maxCount: 2, maxBytes: 1000 }).map((p) => p.context), ['aaaa', 'bbbb']);
  // Each entry counts its bytes and the 4-byte length a batch gives it.
  assert.deepEqual(queue.takeBatch({ maxCount: 10, maxBytes: 15 }).map((p) => p.context), ['cccc']);
  assert.deepEqual(queue.takeBatch({ maxCount: 10, maxBytes: 16 }).map((p) => p.context), ['dddd']);
  assert.deepEqual(queue.takeBatch({ maxCount: 10, maxBytes: 16 }).map((p) => p.context), ['e'.repeat(50)]);
  assert.equal(queue.bytes, 0);
});

test('retried proposals go to the front in their order, even when the queue is full', () => {
  const queue = new ProposalQueue({ maxCount: 1, maxBytes: 1 << 20 });
  const [a, r1, r2] = [pending('a', 100), pending('r1', 100), pending('r2', 100)];
  queue.push(a.proposal);
  queue.pushFront([r1.proposal, r2.proposal]);
  assert.equal(queue.length, 3);
  assert.equal(queue.bytes, 5);
  assert.deepEqual(queue.takeBatch(ROOMY), [r1.proposal, r2.proposal, a.proposal]);
});

test('remove takes out one waiting proposal and its bytes', () => {
  const queue = new ProposalQueue(ROOMY);
  const [a, b] = [pending('a', 100), pending('bb', 100)];
  queue.push(a.proposal);
  queue.push(b.proposal);
  assert.equal(queue.remove(b.proposal), true);
  assert.equal(queue.remove(b.proposal), false);
  assert.equal(queue.bytes, 1);
});

test('expire rejects every proposal whose deadline passed with TIMEOUT, mayBeChosen=false', () => {
  const queue = new ProposalQueue(ROOMY);
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
  assert.equal(queue.bytes, 4);
  assert.equal(queue.earliestDeadline(), 151);
  assert.deepEqual(queue.takeBatch(ROOMY), [late.proposal]);
  assert.equal(queue.earliestDeadline(), undefined);
});

test('rejectAll empties the queue, each with a fresh error', () => {
  const queue = new ProposalQueue(ROOMY);
  const [a, b] = [pending('a', 100), pending('b', 100)];
  queue.push(a.proposal);
  queue.push(b.proposal);
  queue.rejectAll(() => new PaxosError('STOPPED', 'stopped'));
  assert.equal(queue.length, 0);
  assert.equal(queue.bytes, 0);
  assert.equal(a.rejected[0]?.code, 'STOPPED');
  assert.equal(b.rejected[0]?.code, 'STOPPED');
  assert.notEqual(a.rejected[0], b.rejected[0]);
});

test('settle answers a proposal once; later answers are ignored', () => {
  const a = pending('a', 100);
  settle(a.proposal, new PaxosError('TIMEOUT', 'late'));
  settle(a.proposal, { instanceId: 3, batchIndex: 0, result: 'ok' });
  assert.equal(a.rejected.length, 1);
  assert.deepEqual(a.resolved, []);
});

test('a value marked alone (a master bid, a membership change) is never batched with others', () => {
  const queue = new ProposalQueue(ROOMY);
  const [a, b, c, d] = [pending('a', 100), pending('b', 100), pending('c', 100), pending('d', 100)];
  const system = { ...pending('sys', 100).proposal, alone: true };
  queue.push(a.proposal);
  queue.push(b.proposal);
  queue.push(system);
  queue.push(c.proposal);
  queue.push(d.proposal);
  assert.deepEqual(queue.takeBatch(ROOMY), [a.proposal, b.proposal], 'the batch stops before it');
  assert.deepEqual(queue.takeBatch(ROOMY), [system], 'it goes alone');
  assert.deepEqual(queue.takeBatch(ROOMY), [c.proposal, d.proposal]);
});
