// Unit tests of the acceptor, after PhxPaxos src/ut/acceptor_ut.cpp.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Acceptor, type AcceptorState } from '../../src/core/acceptor.js';
import { NULL_BALLOT } from '../../src/core/ballot.js';
import type { GroupContext } from '../../src/core/group-context.js';
import { EMPTY_BYTES, utf8 } from '../../src/util/bytes.js';
import { acceptMsg, ballot, chain, makeContext, ofKind, prepareMsg, text, type ContextOptions } from './fixtures.js';

const EMPTY_STATE: AcceptorState = { promised: NULL_BALLOT, accepted: NULL_BALLOT, value: EMPTY_BYTES, checksum: 0 };

function setup(options: ContextOptions = {}, state: AcceptorState = EMPTY_STATE): {
  context: GroupContext; acceptor: Acceptor;
} {
  const context = makeContext({ nodeId: 1, members: [1, 2, 3], ...options });
  return { context, acceptor: new Acceptor(context, state) };
}

describe('Acceptor.onPrepare', () => {
  test('promises every ballot >= the promise, including an equal one, and persists before replying', () => {
    const { context, acceptor } = setup();
    const ballots = [ballot(1, 2), ballot(5, 3), ballot(5, 3)];
    for (const b of ballots) {
      acceptor.onPrepare(prepareMsg(b.nodeId, 0, b));
      const ready = context.outbox.take();
      assert.deepEqual(acceptor.promised, b);
      assert.equal(ready.records.length, 1);
      assert.deepEqual(ready.records[0]?.promised, b);
      assert.equal(ready.mustSync, true);
      const replies = ofKind(ready.messages, 'prepareReply');
      assert.equal(replies.length, 1);
      const reply = replies[0];
      assert.ok(reply);
      assert.equal(reply.to, b.nodeId);
      assert.equal(reply.afterPersist, true, 'a promise leaves only after it is durable');
      assert.equal(reply.message.rejectedBy, 0);
      assert.deepEqual(reply.message.ballot, b);
      assert.equal(reply.message.from, 1);
      assert.deepEqual(reply.message.acceptedBallot, NULL_BALLOT);
      assert.equal(reply.message.acceptedValue, null);
    }
  });

  test('rejects a lower ballot with rejectedBy = the promised proposal id and persists nothing', () => {
    const { context, acceptor } = setup();
    acceptor.onPrepare(prepareMsg(2, 0, ballot(10, 2)));
    context.outbox.take();
    for (const lower of [ballot(9, 3), ballot(10, 1)]) {
      acceptor.onPrepare(prepareMsg(lower.nodeId, 0, lower));
      const ready = context.outbox.take();
      assert.equal(ready.records.length, 0, 'a reject writes nothing');
      assert.equal(ready.mustSync, false);
      assert.deepEqual(acceptor.promised, ballot(10, 2), 'the promise is unchanged');
      const [reply] = ofKind(ready.messages, 'prepareReply');
      assert.ok(reply);
      assert.equal(reply.to, lower.nodeId);
      assert.equal(reply.message.rejectedBy, 10);
      assert.deepEqual(reply.message.ballot, lower);
      assert.equal(reply.afterPersist, false, 'a reject reveals nothing new and need not wait for the disk');
      assert.equal(reply.message.acceptedValue, null);
    }
  });

  test('a restored promise is honoured', () => {
    const { context, acceptor } = setup({}, { ...EMPTY_STATE, promised: ballot(5, 2) });
    acceptor.onPrepare(prepareMsg(3, 0, ballot(4, 9)));
    const [reply] = ofKind(context.outbox.take().messages, 'prepareReply');
    assert.equal(reply?.message.rejectedBy, 5);
  });

  test('a promise reply carries the accepted ballot and value of this instance', () => {
    const { context, acceptor } = setup();
    acceptor.onAccept(acceptMsg(2, 0, ballot(3, 2), 'v'));
    context.outbox.take();
    acceptor.onPrepare(prepareMsg(3, 0, ballot(4, 3)));
    const ready = context.outbox.take();
    const [reply] = ofKind(ready.messages, 'prepareReply');
    assert.ok(reply);
    assert.equal(reply.message.rejectedBy, 0);
    assert.deepEqual(reply.message.acceptedBallot, ballot(3, 2));
    assert.equal(text(reply.message.acceptedValue), 'v');
    const [record] = ready.records;
    assert.deepEqual(record?.promised, ballot(4, 3));
    assert.deepEqual(record?.accepted, ballot(3, 2), 'a promise keeps the accepted value');
    assert.equal(text(record?.value), 'v');
  });

  test('the reply names the acceptor\'s current instance', () => {
    const { context, acceptor } = setup({ instanceId: 12 });
    acceptor.onPrepare(prepareMsg(2, 12, ballot(1, 2)));
    const [reply] = context.outbox.take().messages;
    assert.equal(reply?.message.instanceId, 12);
  });
});

describe('Acceptor.onAccept', () => {
  test('accepts successive and equal ballots, each overwriting the value', () => {
    const { context, acceptor } = setup();
    const steps: [ReturnType<typeof ballot>, string][] = [[ballot(1, 2), 'a'], [ballot(2, 3), 'b'], [ballot(2, 3), 'c']];
    for (const [b, value] of steps) {
      acceptor.onAccept(acceptMsg(b.nodeId, 0, b, value));
      const ready = context.outbox.take();
      assert.deepEqual(acceptor.promised, b);
      assert.deepEqual(acceptor.accepted, b);
      assert.equal(text(acceptor.acceptedValue), value);
      assert.equal(ready.records.length, 1);
      assert.equal(text(ready.records[0]?.value), value);
      const [reply] = ofKind(ready.messages, 'acceptReply');
      assert.ok(reply);
      assert.equal(reply.to, b.nodeId);
      assert.equal(reply.message.rejectedBy, 0);
      assert.deepEqual(reply.message.ballot, b);
      assert.equal(reply.afterPersist, true, 'an accept reply leaves only after the record is durable');
    }
  });

  test('rejects a ballot below the promise, persisting nothing and keeping the accepted value', () => {
    const { context, acceptor } = setup();
    acceptor.onAccept(acceptMsg(2, 0, ballot(3, 2), 'kept'));
    acceptor.onPrepare(prepareMsg(3, 0, ballot(5, 3)));
    context.outbox.take();
    acceptor.onAccept(acceptMsg(2, 0, ballot(4, 2), 'lost'));
    const ready = context.outbox.take();
    assert.equal(ready.records.length, 0);
    assert.deepEqual(acceptor.accepted, ballot(3, 2));
    assert.equal(text(acceptor.acceptedValue), 'kept');
    const [reply] = ofKind(ready.messages, 'acceptReply');
    assert.equal(reply?.message.rejectedBy, 5);
    assert.equal(reply?.afterPersist, false);
  });

  test('an accept equal to the promise passes', () => {
    const { context, acceptor } = setup();
    acceptor.onPrepare(prepareMsg(2, 0, ballot(7, 2)));
    context.outbox.take();
    acceptor.onAccept(acceptMsg(2, 0, ballot(7, 2), 'x'));
    const [reply] = ofKind(context.outbox.take().messages, 'acceptReply');
    assert.equal(reply?.message.rejectedBy, 0);
  });

  test('the canary fault acceptLowerBallot really accepts below the promise', () => {
    const { context, acceptor } = setup({ faults: { acceptLowerBallot: true } });
    acceptor.onPrepare(prepareMsg(2, 0, ballot(7, 2)));
    acceptor.onAccept(acceptMsg(3, 0, ballot(1, 3), 'x'));
    const replies = ofKind(context.outbox.take().messages, 'acceptReply');
    assert.equal(replies[0]?.message.rejectedBy, 0);
  });
});

describe('Acceptor records', () => {
  test('a record holds instance, promise, accepted ballot, value and the chained checksum', () => {
    const { context, acceptor } = setup({ instanceId: 7, lastChecksum: 0x1234 });
    acceptor.onAccept(acceptMsg(2, 7, ballot(4, 2), 'v'));
    const [record] = context.outbox.take().records;
    assert.deepEqual(record, {
      instanceId: 7, promised: ballot(4, 2), accepted: ballot(4, 2), value: utf8('v'), checksum: chain(0x1234, 'v'),
    });
    assert.notEqual(record?.checksum, 0);
  });

  test('instance 0 starts the chain from 0; an unknown previous checksum keeps the chain unknown', () => {
    const first = setup({ instanceId: 0, lastChecksum: 0 });
    first.acceptor.onAccept(acceptMsg(2, 0, ballot(1, 2), 'v'));
    assert.equal(first.context.outbox.take().records[0]?.checksum, chain(0, 'v'));
    const unknown = setup({ instanceId: 7, lastChecksum: 0 });
    unknown.acceptor.onAccept(acceptMsg(2, 7, ballot(1, 2), 'v'));
    assert.equal(unknown.context.outbox.take().records[0]?.checksum, 0);
  });

  test('a promise after an accept keeps the accepted value\'s checksum', () => {
    const { context, acceptor } = setup({ instanceId: 3, lastChecksum: 99 });
    acceptor.onAccept(acceptMsg(2, 3, ballot(1, 2), 'v'));
    context.outbox.take();
    acceptor.onPrepare(prepareMsg(3, 3, ballot(2, 3)));
    const [record] = context.outbox.take().records;
    assert.equal(record?.checksum, chain(99, 'v'));
    assert.deepEqual(record?.promised, ballot(2, 3));
  });

  test('several changes to one instance in one Ready collapse into the newest record', () => {
    const { context, acceptor } = setup();
    acceptor.onPrepare(prepareMsg(2, 0, ballot(1, 2)));
    acceptor.onAccept(acceptMsg(2, 0, ballot(1, 2), 'v'));
    const ready = context.outbox.take();
    assert.equal(ready.records.length, 1);
    assert.deepEqual(ready.records[0]?.accepted, ballot(1, 2));
    assert.equal(ready.messages.length, 2, 'both replies still leave');
    assert.ok(ready.messages.every((outbound) => outbound.afterPersist));
  });
});

describe('Acceptor across instances', () => {
  test('newInstance keeps the promise and clears the accepted value', () => {
    const { context, acceptor } = setup();
    acceptor.onAccept(acceptMsg(2, 0, ballot(6, 2), 'v'));
    context.outbox.take();
    context.instanceId = 1;
    acceptor.newInstance();
    assert.deepEqual(acceptor.promised, ballot(6, 2));
    assert.equal(acceptor.hasAccepted, false);
    assert.deepEqual(acceptor.accepted, NULL_BALLOT);
    assert.equal(acceptor.acceptedValue.length, 0);
    assert.equal(acceptor.acceptedChecksum, 0);
    // The kept promise still rejects lower ballots in the new instance...
    acceptor.onAccept(acceptMsg(3, 1, ballot(5, 3), 'x'));
    assert.equal(ofKind(context.outbox.take().messages, 'acceptReply')[0]?.message.rejectedBy, 6);
    // ...and a promise reply no longer reports the old instance's value.
    acceptor.onPrepare(prepareMsg(3, 1, ballot(7, 3)));
    const [reply] = ofKind(context.outbox.take().messages, 'prepareReply');
    assert.deepEqual(reply?.message.acceptedBallot, NULL_BALLOT);
    assert.equal(reply?.message.acceptedValue, null);
  });

  test('adoptLearned keeps the higher promise and persists the learned value', () => {
    const { context, acceptor } = setup({ instanceId: 4 });
    acceptor.onPrepare(prepareMsg(3, 4, ballot(9, 3)));
    context.outbox.take();
    const record = acceptor.adoptLearned(ballot(4, 2), utf8('v'), 55);
    assert.deepEqual(record, { instanceId: 4, promised: ballot(9, 3), accepted: ballot(4, 2), value: utf8('v'), checksum: 55 });
    assert.deepEqual(context.outbox.take().records, [record]);
    assert.deepEqual(acceptor.promised, ballot(9, 3));
    assert.deepEqual(acceptor.accepted, ballot(4, 2));

    const higher = acceptor.adoptLearned(ballot(12, 1), utf8('w'), 56);
    assert.deepEqual(higher.promised, ballot(12, 1), 'a higher learned ballot raises the promise');
    assert.deepEqual(acceptor.promised, ballot(12, 1));
  });
});
