import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NULL_BALLOT } from '../../src/core/ballot.js';
import { Outbox } from '../../src/core/outbox.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { VoteCounter } from '../../src/core/vote-counter.js';
import { fromUtf8, utf8 } from '../../src/util/bytes.js';
import { ballot, prepareMsg } from './fixtures.js';

function record(instanceId: number, value: string): AcceptorRecord {
  return { instanceId, promised: ballot(1, 1), accepted: NULL_BALLOT, value: utf8(value), checksum: 0 };
}

test('consecutive records of one instance collapse to the newest; others are kept in order', () => {
  const outbox = new Outbox();
  assert.equal(outbox.isEmpty(), true);
  outbox.persist(record(1, 'a'));
  outbox.persist(record(1, 'b'));
  outbox.persist(record(2, 'c'));
  outbox.persist(record(1, 'd'));
  assert.equal(outbox.hasPendingRecords, true);
  const ready = outbox.take();
  assert.deepEqual(ready.records.map((r) => [r.instanceId, fromUtf8(r.value)]),
    [[1, 'b'], [2, 'c'], [1, 'd']]);
  assert.equal(ready.mustSync, true);
  assert.equal(outbox.isEmpty(), true, 'take empties the outbox');
  assert.equal(outbox.take().mustSync, false, 'no records, no sync');
});

test('take hands over messages, reads, results, execute and halt exactly once', () => {
  const outbox = new Outbox();
  outbox.send(2, prepareMsg(1, 0, ballot(1, 1)));
  outbox.read(4);
  outbox.result({ token: 9, outcome: { kind: 'timeout', mayBeChosen: false } });
  outbox.executeNext({ instanceId: 0, ballot: ballot(1, 1), value: utf8('v'), checksum: 0, proposalToken: null });
  outbox.halt({ code: 'DIVERGED', message: 'x' });
  const ready = outbox.take();
  assert.equal(ready.messages.length, 1);
  assert.equal(ready.messages[0]?.afterPersist, true);
  assert.deepEqual(ready.reads, [4]);
  assert.equal(ready.results.length, 1);
  assert.equal(ready.execute?.instanceId, 0);
  assert.equal(ready.halted?.code, 'DIVERGED');
  const again = outbox.take();
  assert.deepEqual([again.messages.length, again.reads.length, again.results.length], [0, 0, 0]);
  assert.equal(again.execute, null);
  assert.equal(again.halted, null);
});

test('each of the outputs alone makes the outbox non-empty', () => {
  const fills: ((outbox: Outbox) => void)[] = [
    (outbox) => outbox.persist(record(0, 'a')),
    (outbox) => outbox.send(1, prepareMsg(1, 0, ballot(1, 1))),
    (outbox) => outbox.read(0),
    (outbox) => outbox.result({ token: 1, outcome: { kind: 'conflict', instanceId: 0 } }),
    (outbox) => outbox.executeNext({ instanceId: 0, ballot: ballot(1, 1), value: utf8('v'), checksum: 0,
      proposalToken: null }),
    (outbox) => outbox.halt({ code: 'GROUP_HALTED', message: 'x' }),
  ];
  for (const fill of fills) {
    const outbox = new Outbox();
    fill(outbox);
    assert.equal(outbox.isEmpty(), false);
  }
});

test('the vote counter counts distinct nodes and resets', () => {
  const votes = new VoteCounter();
  votes.grant(1);
  votes.grant(1);
  votes.reject(2);
  votes.reject(3);
  votes.reject(3);
  assert.deepEqual([votes.grantedCount, votes.rejectedCount, votes.receivedCount], [1, 2, 3]);
  votes.reset();
  assert.deepEqual([votes.grantedCount, votes.rejectedCount, votes.receivedCount], [0, 0, 0]);
  // A node heard twice with different answers (a duplicated request answered after a new promise)
  // counts in both tallies, once in the replies.
  votes.grant(2);
  votes.reject(2);
  assert.deepEqual([votes.grantedCount, votes.rejectedCount, votes.receivedCount], [1, 1, 1]);
});

test('a halt discards pending records, messages, reads and execution but keeps proposal results', () => {
  const outbox = new Outbox();
  outbox.persist(record(3, 'x'));
  outbox.send(2, prepareMsg(1, 3, ballot(4, 1)));
  outbox.read(1);
  outbox.executeNext({ instanceId: 2, ballot: ballot(1, 1), value: utf8('v'), checksum: 0, proposalToken: null });
  outbox.result({ token: 9, outcome: { kind: 'timeout', mayBeChosen: true } });
  outbox.discardActions();
  outbox.halt({ code: 'GROUP_HALTED', message: 'disk failed' });
  const ready = outbox.take();
  assert.deepEqual(ready.records, []);
  assert.deepEqual(ready.messages, []);
  assert.deepEqual(ready.reads, []);
  assert.equal(ready.execute, null);
  assert.deepEqual(ready.results.map((result) => result.token), [9]);
  assert.equal(ready.halted?.code, 'GROUP_HALTED');
});

test('a Ready keeps its lists: what the outbox collects next goes into fresh ones, empty lists are frozen', () => {
  const outbox = new Outbox();
  outbox.persist(record(3, 'x'));
  outbox.send(2, prepareMsg(1, 3, ballot(4, 1)));
  const first = outbox.take();
  outbox.persist(record(4, 'y'));
  outbox.read(1);
  outbox.result({ token: 9, outcome: { kind: 'timeout', mayBeChosen: true } });
  const second = outbox.take();
  assert.deepEqual(first.records.map((r) => r.instanceId), [3]);
  assert.equal(first.messages.length, 1);
  assert.deepEqual([first.reads, first.results], [[], []]);
  assert.equal(Object.isFrozen(first.reads) && Object.isFrozen(first.results), true);
  assert.deepEqual(second.records.map((r) => r.instanceId), [4]);
  assert.deepEqual(second.reads, [1]);
  assert.equal(second.results.length, 1);
  assert.equal(second.messages.length, 0);
  assert.equal(outbox.isEmpty(), true);
});
