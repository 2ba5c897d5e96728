// Catch-up ("ask for learn") at unit level: the Teacher and the Learner on a GroupContext, then the
// whole exchange between GroupCores in a CoreHarness.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { GroupContext } from '../../src/core/group-context.js';
import { LEARN_ACK_BYTES, Learner, QUIET_ACK_RETRY_DELAYS } from '../../src/core/learner.js';
import { DEFAULT_TIMING, type ProtocolTiming } from '../../src/core/config.js';
import type { SendNowInstanceIdMessage } from '../../src/core/messages.js';
import type { AcceptorRecord, ChosenValue, OutboundMessage } from '../../src/core/ready.js';
import { proposalBody } from '../../src/core/proposal-identity.js';
import { TEACH_BYTES_BEYOND_ACK, Teacher } from '../../src/core/teacher.js';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { utf8 } from '../../src/util/bytes.js';
import { ballot, makeContext, ofKind, stabilizeWithout, text } from './fixtures.js';

function record(instanceId: number): AcceptorRecord {
  return { instanceId, promised: ballot(3, 1), accepted: ballot(3, 1), value: utf8(`v${instanceId}`),
    checksum: 1000 + instanceId };
}

function ask(from: number, instanceId: number): { kind: 'askForLearn'; from: number; instanceId: number } {
  return { kind: 'askForLearn', from, instanceId };
}

interface TeacherFixture {
  readonly context: GroupContext;
  readonly teacher: Teacher;
  take(): { messages: readonly OutboundMessage[]; reads: readonly number[]; readBytesLimit: number };
}

/** A teacher window small enough to see its edges in a few instances. */
const SMALL_WINDOW = { teachAckLead: 21, learnAckLead: 4 };

/** Node 1 at instance 50 (everything below is chosen), min chosen instance `minChosen`. */
function teacherAt(instanceId = 50, minChosen = 0): TeacherFixture {
  const context = makeContext({ nodeId: 1, members: [1, 2, 3], instanceId, nowMs: 1000, timing: SMALL_WINDOW });
  const teacher = new Teacher(context, minChosen);
  return { context, teacher, take: () => context.outbox.take() };
}

/** Node 2 asked at `begin` and confirmed; returns the reads the confirmation requested. */
function confirmedSession(fixture: TeacherFixture, begin = 10): readonly number[] {
  fixture.teacher.onAskForLearn(ask(2, begin), null);
  fixture.take();
  fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: begin });
  return fixture.take().reads;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, index) => from + index);
}

describe('Teacher', () => {
  test('answers a node that is behind with sendNowInstanceId', () => {
    const fixture = teacherAt(50, 3);
    fixture.teacher.onAskForLearn(ask(2, 10), null);
    const { messages, reads } = fixture.take();
    assert.deepEqual(reads, []);
    assert.equal(messages.length, 1);
    assert.deepEqual(messages[0], {
      to: 2, afterPersist: false,
      message: { kind: 'sendNowInstanceId', from: 1, instanceId: 10, nowInstanceId: 50, minChosenInstanceId: 3 },
    });
    assert.equal(fixture.teacher.teaching, null, 'not teaching until the learner confirms');
  });

  test('stays silent to a node that is not behind', () => {
    const fixture = teacherAt(50);
    fixture.teacher.onAskForLearn(ask(2, 50), null);
    fixture.teacher.onAskForLearn(ask(3, 70), null);
    assert.equal(fixture.take().messages.length, 0);
    assert.equal(fixture.teacher.nextTimerAt(), undefined, 'no lock was taken');
  });

  test('a confirmation starts streaming reads, at most ackLead (21) beyond the begin', () => {
    const fixture = teacherAt(50);
    const reads = confirmedSession(fixture, 10);
    assert.deepEqual(reads, range(10, 31));
    assert.equal(fixture.teacher.teaching, 2);
    fixture.teacher.pump();
    assert.deepEqual(fixture.take().reads, [], 'nothing more until an ack');
  });

  test('reads stop at the teacher\'s own instance', () => {
    const fixture = teacherAt(15);
    assert.deepEqual(confirmedSession(fixture, 10), range(10, 15));
  });

  test('a confirmation from another node or for another begin is ignored', () => {
    const fixture = teacherAt(50);
    fixture.teacher.onAskForLearn(ask(2, 10), null);
    fixture.take();
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 3, instanceId: 10 });
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: 11 });
    assert.deepEqual(fixture.take().reads, []);
    assert.equal(fixture.teacher.teaching, null);
  });

  test('values read from the log are streamed in order with needAck', () => {
    const fixture = teacherAt(50);
    confirmedSession(fixture, 10);
    fixture.teacher.onLogRead(11, record(11));
    assert.equal(fixture.take().messages.length, 0, 'an out-of-order read is not sent');
    fixture.teacher.onLogRead(10, record(10));
    const [sent] = ofKind(fixture.take().messages, 'learnValue');
    assert.ok(sent);
    assert.equal(sent.to, 2);
    assert.equal(sent.afterPersist, false);
    assert.deepEqual({ ...sent.message, value: text(sent.message.value) }, {
      kind: 'learnValue', from: 1, instanceId: 10, ballot: ballot(3, 1), value: 'v10', checksum: 1010, needAck: true,
    });
  });

  test('a missing or unchosen record ends the session', () => {
    for (const bad of [undefined, { ...record(10), accepted: ballot(0, 0) }, record(9)]) {
      const fixture = teacherAt(50);
      confirmedSession(fixture, 10);
      fixture.teacher.onLogRead(10, bad);
      assert.equal(fixture.take().messages.length, 0);
      assert.equal(fixture.teacher.teaching, null);
    }
  });

  test('acks open the window', () => {
    const fixture = teacherAt(50);
    confirmedSession(fixture, 10);
    for (let instanceId = 10; instanceId < 14; instanceId++) fixture.teacher.onLogRead(instanceId, record(instanceId));
    fixture.take();
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 14 });
    assert.deepEqual(fixture.take().reads, range(31, 35));
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 12 });
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 3, instanceId: 14 });
    assert.deepEqual(fixture.take().reads, [], 'stale acks and acks from other nodes change nothing');
  });

  test('an ack beyond what was sent moves the stream on to it; one at our instance ends the session', () => {
    const fixture = teacherAt(50);
    confirmedSession(fixture, 10);
    fixture.teacher.onLogRead(10, record(10));
    fixture.take();
    // The learner holds values of an earlier session up to 19: streaming goes on from 20, and the
    // reads still in flight for 12..19 are ignored when they come back.
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 20 });
    assert.equal(fixture.teacher.teaching, 2);
    const reads = fixture.take().reads;
    assert.equal(reads[0], 20);
    fixture.teacher.onLogRead(12, record(12));
    assert.equal(fixture.take().messages.length, 0, 'a stale read sends nothing');
    fixture.teacher.onLogRead(20, record(20));
    assert.deepEqual(ofKind(fixture.take().messages, 'learnValue').map(({ message }) => message.instanceId), [20]);
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 50 });
    assert.equal(fixture.teacher.teaching, null, 'the learner has everything we have');
  });

  test('the session ends once the teacher\'s last chosen instance is sent', () => {
    const fixture = teacherAt(12);
    confirmedSession(fixture, 10);
    fixture.teacher.onLogRead(10, record(10));
    assert.equal(fixture.teacher.teaching, 2);
    fixture.teacher.onLogRead(11, record(11));
    assert.equal(fixture.teacher.teaching, null);
    assert.equal(ofKind(fixture.take().messages, 'learnValue').length, 2);
  });

  test('no ack for teachAckTimeoutMs ends the session and shrinks the lead by the learner\'s ack lead', () => {
    const fixture = teacherAt(100);
    confirmedSession(fixture, 10);
    assert.equal(fixture.teacher.nextTimerAt(), 1000 + 5000);
    fixture.teacher.tick(5999);
    assert.equal(fixture.teacher.teaching, 2);
    fixture.teacher.tick(6000);
    assert.equal(fixture.teacher.teaching, null);
    assert.equal(fixture.teacher.nextTimerAt(), undefined);
    fixture.context.nowMs = 7000;
    fixture.teacher.onAskForLearn(ask(3, 40), null);
    assert.equal(ofKind(fixture.take().messages, 'sendNowInstanceId').length, 1, 'the lock is free again');
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 3, instanceId: 40 });
    assert.deepEqual(fixture.take().reads, range(40, 57), 'ack lead 21 - 4 = 17');
  });

  test('a completed session restores the full ack lead', () => {
    const fixture = teacherAt(100);
    confirmedSession(fixture, 10);
    fixture.teacher.tick(6000);
    fixture.context.nowMs = 6000;
    fixture.teacher.onAskForLearn(ask(2, 98), null);
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: 98 });
    fixture.take();
    fixture.teacher.onLogRead(98, record(98));
    fixture.teacher.onLogRead(99, record(99));
    assert.equal(fixture.teacher.teaching, null);
    fixture.teacher.onAskForLearn(ask(3, 10), null);
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 3, instanceId: 10 });
    assert.equal(fixture.take().reads.length, 21);
  });

  test('an unconfirmed session does not hold the teacher against another learner; a confirmed one does', () => {
    const fixture = teacherAt(50);
    fixture.teacher.onAskForLearn(ask(2, 10), null);
    fixture.take();
    fixture.teacher.onAskForLearn(ask(3, 20), null);
    assert.equal(ofKind(fixture.take().messages, 'sendNowInstanceId')[0]?.to, 3, 'node 2 never confirmed');
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: 10 });
    assert.deepEqual(fixture.take().reads, [], 'node 2 lost the unconfirmed session');
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 3, instanceId: 20 });
    assert.deepEqual(fixture.take().reads, range(20, 41));
    fixture.teacher.onAskForLearn(ask(2, 10), null);
    assert.equal(ofKind(fixture.take().messages, 'sendNowInstanceId').length, 0, 'busy teaching node 3');
    fixture.teacher.tick(1000 + 5000);
    fixture.teacher.onAskForLearn(ask(2, 10), null);
    assert.equal(ofKind(fixture.take().messages, 'sendNowInstanceId')[0]?.to, 2, 'the quiet session ended');
  });

  test('the same learner asking again replaces its own session', () => {
    const fixture = teacherAt(50);
    fixture.teacher.onAskForLearn(ask(2, 10), null);
    fixture.teacher.onAskForLearn(ask(2, 12), null);
    assert.equal(ofKind(fixture.take().messages, 'sendNowInstanceId').length, 2);
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: 12 });
    assert.deepEqual(fixture.take().reads, range(12, 33));
  });

  test('an old ask of the learner being taught, duplicated or held back, leaves its session streaming', () => {
    const fixture = teacherAt(50);
    assert.deepEqual(confirmedSession(fixture, 10), range(10, 31));
    for (const instanceId of range(10, 31)) fixture.teacher.onLogRead(instanceId, record(instanceId));
    fixture.take();
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 20 });
    assert.deepEqual(fixture.take().reads, range(31, 41));
    // Below the session's begin, or more than one below the ack: the learner cannot be there.
    for (const stale of [9, 10, 18]) {
      fixture.teacher.onAskForLearn(ask(2, stale), null);
      assert.equal(ofKind(fixture.take().messages, 'sendNowInstanceId').length, 0, `an ask at ${stale} is old`);
    }
    assert.equal(fixture.teacher.teaching, 2, 'the session goes on');
    fixture.teacher.onLogRead(31, record(31));
    assert.deepEqual(ofKind(fixture.take().messages, 'learnValue').map((sent) => sent.message.instanceId), [31]);
    // One below the ack (a learner restarted with its last learned value not yet executed), or at
    // or past it: a fresh ask, which replaces the session as before.
    fixture.teacher.onAskForLearn(ask(2, 19), null);
    assert.equal(ofKind(fixture.take().messages, 'sendNowInstanceId').length, 1);
    assert.equal(fixture.teacher.teaching, null, 'a new session, not yet confirmed');
  });

  test('one-behind shortcut: with the lock busy, a node one behind gets the previous value without a session', () => {
    const fixture = teacherAt(50);
    confirmedSession(fixture, 10);
    const previous: ChosenValue = { instanceId: 49, ballot: ballot(4, 3), value: utf8('prev'), checksum: 4949,
      proposalToken: null };
    fixture.teacher.onAskForLearn(ask(3, 49), previous);
    const { messages } = fixture.take();
    assert.equal(messages.length, 1);
    const [single] = ofKind(messages, 'learnValue');
    assert.ok(single);
    assert.equal(single.to, 3);
    assert.equal(single.message.instanceId, 49);
    assert.equal(single.message.needAck, false);
    assert.equal(single.message.checksum, 4949);
    assert.deepEqual(single.message.ballot, ballot(4, 3));
    assert.equal(text(single.message.value), 'prev');
    assert.equal(fixture.teacher.teaching, 2, 'the session with node 2 goes on');
    fixture.teacher.onAskForLearn(ask(3, 48), previous);
    fixture.teacher.onAskForLearn(ask(3, 49), null);
    assert.equal(fixture.take().messages.length, 0, 'two behind, or no value in memory: silence');
  });

  test('bytes bound the stream once sizes are known: 16 MiB beyond the ack, reads in flight included', () => {
    const large = new Uint8Array(4 * 1024 * 1024);
    // The default window (1,000 instances beyond the ack), not the small one of the other tests.
    const context = makeContext({ nodeId: 1, members: [1, 2, 3], instanceId: 500, nowMs: 1000 });
    const fixture: TeacherFixture = { context, teacher: new Teacher(context, 0), take: () => context.outbox.take() };
    fixture.teacher.onAskForLearn(ask(2, 10), null);
    fixture.take();
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: 10 });
    assert.deepEqual(fixture.take().reads, range(10, 42), 'sizes unknown yet: 32 reads to begin with');
    for (let instanceId = 10; instanceId < 42; instanceId++) {
      fixture.teacher.onLogRead(instanceId, { ...record(instanceId), value: large });
    }
    const { messages, reads } = fixture.take();
    assert.equal(ofKind(messages, 'learnValue').length, 32, 'what was read is sent');
    // The 32 first reads go out before any size is known: a driver that read them all would put this
    // session 128 MiB beyond its ack (a real one stops at the Ready's readBytesLimit: see the test
    // of deferred reads below). From then on reads wait until what is unacked, and what they may
    // bring, fit 16 MiB.
    assert.deepEqual(reads, [], 'no more reads while 128 MiB wait for an ack');
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 40 });
    assert.deepEqual(fixture.take().reads, [42, 43], 'two values not acked (8 MiB) and two reads reach 16 MiB');
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 42 });
    assert.deepEqual(fixture.take().reads, [44, 45], 'everything sent is acked: four reads in flight in all');
    fixture.teacher.onLogRead(42, { ...record(42), value: large });
    assert.deepEqual(fixture.take().reads, [], 'a value sent counts until it is acked');
  });

  test('reads in flight count at the largest value sent, not the average; a value beyond the budget still goes', () => {
    const context = makeContext({ nodeId: 1, members: [1, 2, 3], instanceId: 500, nowMs: 1000 });
    const fixture: TeacherFixture = { context, teacher: new Teacher(context, 0), take: () => context.outbox.take() };
    fixture.teacher.onAskForLearn(ask(2, 10), null);
    fixture.take();
    fixture.teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: 10 });
    assert.deepEqual(fixture.take().reads, range(10, 42));
    // One value of 4 MiB among small ones: the average would allow hundreds of reads.
    fixture.teacher.onLogRead(10, { ...record(10), value: new Uint8Array(4 * 1024 * 1024) });
    for (let instanceId = 11; instanceId < 42; instanceId++) fixture.teacher.onLogRead(instanceId, record(instanceId));
    assert.deepEqual(fixture.take().reads, [42, 43], '4 MiB unacked and two reads of up to 4 MiB: a third would pass 16');
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 42 });
    assert.deepEqual(fixture.take().reads, [44, 45], 'all acked: four reads of up to 4 MiB in flight');
    // A value larger than the whole budget: alone, once nothing else is outstanding.
    fixture.teacher.onLogRead(42, { ...record(42), value: new Uint8Array(TEACH_BYTES_BEYOND_ACK + 1) });
    for (let instanceId = 43; instanceId < 46; instanceId++) fixture.teacher.onLogRead(instanceId, record(instanceId));
    assert.equal(ofKind(fixture.take().messages, 'learnValue').length, 4);
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 46 });
    assert.deepEqual(fixture.take().reads, [46], 'one read at a time while values may exceed the budget');
    fixture.teacher.onLogRead(46, record(46));
    // The estimate (the largest value so far, past the budget) allows nothing more, but the budget is
    // not spent: one read whenever none is in flight, so small values never wait for an ack the
    // learner sends only every learnAckLead values (the Ready's byte limit bounds what it brings).
    const next = fixture.take();
    assert.deepEqual(next.reads, [47], 'one read while none is in flight and the budget is not spent');
    assert.equal(next.readBytesLimit, TEACH_BYTES_BEYOND_ACK - record(46).value.length);
    fixture.teacher.onLearnValueAck({ kind: 'learnValueAck', from: 2, instanceId: 47 });
    assert.deepEqual(fixture.take().reads, [], 'one read in flight already');
    fixture.teacher.onLogRead(47, record(47));
    assert.deepEqual(fixture.take().reads, [48]);
  });

  test('a Ready\'s reads carry the budget left; reads a driver deferred are asked for again, in order', () => {
    const context = makeContext({ nodeId: 1, members: [1, 2, 3], instanceId: 500, nowMs: 1000 });
    const teacher = new Teacher(context, 0);
    teacher.onAskForLearn(ask(2, 10), null);
    context.outbox.take();
    teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: 10 });
    const first = context.outbox.take();
    assert.deepEqual(first.reads, range(10, 42));
    assert.equal(first.readBytesLimit, TEACH_BYTES_BEYOND_ACK, 'nothing unacked yet: the whole budget');
    // The driver read 10..14 (1 MiB each) and stopped: 15..41 come back deferred first, then the values.
    const mib = new Uint8Array(1024 * 1024);
    teacher.onLogReadsDeferred(range(15, 42));
    for (let instanceId = 10; instanceId < 15; instanceId++) {
      teacher.onLogRead(instanceId, { ...record(instanceId), value: mib });
    }
    const next = context.outbox.take();
    assert.deepEqual(ofKind(next.messages, 'learnValue').map((sent) => sent.message.instanceId), range(10, 15));
    assert.equal(next.reads[0], 15, 'reading resumes at the first deferred instance');
    assert.deepEqual(next.reads, range(15, 15 + next.reads.length), 'in order, none twice');
    assert.equal(next.reads.length, 11, '5 MiB unacked: eleven more reads of up to 1 MiB fit the 16 MiB');
    assert.equal(next.readBytesLimit, TEACH_BYTES_BEYOND_ACK - 5 * mib.length, 'the budget less what is unacked');
    // A deferral that does not fit this session (an earlier Ready's, or one already re-read) changes nothing.
    teacher.onLogReadsDeferred([12, 13]);
    teacher.onLogReadsDeferred([400]);
    assert.deepEqual(context.outbox.take().reads, []);
  });

  /**
   * A whole teaching session between a real Teacher and a real Learner's ack rule (every
   * learnAckLead values, or a quarter of the budget), through a driver that reads each Ready's
   * reads in order until the values reach its readBytesLimit (at least one unless it is 0) and
   * hands the rest back first. It fails if a round moves nothing (the teacher waits for an ack the
   * learner will not send: a stall of teachAckTimeoutMs in a real run), and reports the most bytes
   * the learner was sent, or the driver read, beyond its last ack.
   */
  function teachAll(sizeAt: (instanceId: number) => number, end: number, budget: number,
    learnerTiming: Partial<ProtocolTiming> = { teachBytesBeyondAck: budget },
    teacherTiming: Partial<ProtocolTiming> = {},
  ): { worstBeyondAck: number; quietAcks: number } {
    const timing = { ...teacherTiming, teachBytesBeyondAck: budget };
    const teacherContext = makeContext({ nodeId: 1, members: [1, 2, 3], instanceId: end, nowMs: 1000, timing });
    const learnerContext = makeContext({ nodeId: 2, members: [1, 2, 3], instanceId: 0, nowMs: 1000,
      timing: learnerTiming });
    const teacher = new Teacher(teacherContext, 0);
    const learner = new Learner(learnerContext);
    teacher.onAskForLearn(ask(2, 0), null);
    teacherContext.outbox.take();
    teacher.onConfirmAskForLearn({ kind: 'confirmAskForLearn', from: 2, instanceId: 0 });
    let acked = 0;
    let received = 0;
    let worstBeyondAck = 0;
    let quietAcks = 0;
    // The session ends once everything is sent: the learner then holds all the teacher had.
    for (let round = 0; received < end; round++) {
      assert.ok(round < 100_000, 'the session did not end');
      const ready = teacherContext.outbox.take();
      const limit = ready.readBytesLimit;
      let bytes = 0;
      let answered = 0;
      while (answered < ready.reads.length && limit > 0 && (answered === 0 || bytes < limit)) {
        bytes += sizeAt(ready.reads[answered] as number);
        answered++;
      }
      if (answered < ready.reads.length) teacher.onLogReadsDeferred(ready.reads.slice(answered));
      for (const instanceId of ready.reads.slice(0, answered)) {
        teacher.onLogRead(instanceId, { ...record(instanceId), value: new Uint8Array(sizeAt(instanceId)) });
      }
      const sent = ofKind(ready.messages, 'learnValue');
      let beyondAck = bytes;
      for (let instanceId = acked; instanceId < received + sent.length; instanceId++) beyondAck += sizeAt(instanceId);
      worstBeyondAck = Math.max(worstBeyondAck, beyondAck);
      for (const { message } of sent) {
        assert.equal(message.instanceId, received, 'values go out in order, each once');
        received++;
        learner.ackStreamed(1, received, message.value.length);
      }
      let acks = ofKind(learnerContext.outbox.take().messages, 'learnValueAck');
      if (received < end && ready.reads.length === 0 && sent.length === 0 && acks.length === 0) {
        // Nothing moves until the learner acks: it must, within its quiet-ack delay (the teacher
        // would end the session only after teachAckTimeoutMs).
        const due = learner.nextTimerAt();
        assert.ok(due - learnerContext.nowMs <= QUIET_ACK_RETRY_DELAYS * DEFAULT_TIMING.retryDelayMaxMs,
          `stalled at ${received} sent, ${acked} acked: nothing to read, send or ack before ${due}`);
        learnerContext.nowMs = due;
        learner.tick(due);
        acks = ofKind(learnerContext.outbox.take().messages, 'learnValueAck');
        quietAcks += acks.length;
      }
      for (const { message } of acks) {
        assert.ok(message.instanceId > acked && message.instanceId <= received, 'an ack moves on, never past what came');
        acked = message.instanceId;
        teacher.onLearnValueAck(message);
      }
      if (received < end) {
        assert.ok(ready.reads.length > 0 || sent.length > 0 || acks.length > 0,
          `stalled at ${received} sent, ${acked} acked: nothing to read, send or ack`);
      }
    }
    return { worstBeyondAck, quietAcks };
  }

  test('a whole session within the budget, whatever the mix of sizes, and never waiting for an ack', () => {
    const mib = 1024 * 1024;
    interface Case {
      name: string; sizeAt: (instanceId: number) => number; end: number; budget: number; largest: number;
    }
    const cases: Case[] = [
      // The estimate, sized by small values, asks for hundreds of large ones at once.
      { name: 'small then large', sizeAt: (id) => (id < 400 ? 100 : 3 * mib), end: 480, budget: 16 * mib, largest: 3 * mib },
      // A value near the budget keeps the estimate high for the rest of the session.
      { name: 'one large then small', sizeAt: (id) => (id === 5 ? 900 : 10), end: 300, budget: 1000, largest: 900 },
      { name: 'one larger than the budget then small', sizeAt: (id) => (id === 3 ? 5 * mib : 1024), end: 200,
        budget: 4 * mib, largest: 5 * mib },
      { name: 'mixed', sizeAt: (id) => ((id * 7919) % 13 === 0 ? 700 : 20 + (id % 50)), end: 600, budget: 600, largest: 700 },
    ];
    for (const { name, sizeAt, end, budget, largest } of cases) {
      const { worstBeyondAck } = teachAll(sizeAt, end, budget);
      assert.ok(worstBeyondAck <= budget + largest,
        `${name}: at worst ${worstBeyondAck} bytes beyond the ack, the budget is ${budget} and one value ${largest}`);
    }
  });

  test('a learner whose own ack rule is looser than the teacher\'s window acks when the stream goes quiet', () => {
    const mib = 1024 * 1024;
    const sizeAt = (): number => 100;
    // The teacher's budget holds 10 values; the learner acks every 50 values or 4 MiB by its own settings.
    const smallBudget = teachAll(sizeAt, 300, 1000, { teachBytesBeyondAck: 16 * mib });
    assert.ok(smallBudget.quietAcks > 0, 'the quiet ack moved the session on');
    assert.ok(smallBudget.worstBeyondAck <= 1000 + 100, `${smallBudget.worstBeyondAck} bytes beyond the ack`);
    // The learner acks every 400 values; the teacher streams at most 40 beyond the ack.
    const smallLead = teachAll(sizeAt, 300, 16 * mib, { learnAckLead: 400 }, { teachAckLead: 40 });
    assert.ok(smallLead.quietAcks > 0, 'the quiet ack moved the session on');
    // Matched settings never need it.
    assert.equal(teachAll(sizeAt, 300, 1000).quietAcks, 0);
  });

  test('a node below the min chosen instance is told so without taking the lock', () => {
    const fixture = teacherAt(50, 20);
    fixture.teacher.onAskForLearn(ask(2, 5), null);
    const [reply] = ofKind(fixture.take().messages, 'sendNowInstanceId');
    assert.equal(reply?.message.minChosenInstanceId, 20);
    fixture.teacher.onAskForLearn(ask(3, 30), null);
    assert.equal(ofKind(fixture.take().messages, 'sendNowInstanceId')[0]?.to, 3, 'node 3 gets the lock');
  });
});

describe('Learner', () => {
  function learnerAt(instanceId: number, nowMs = 0): { context: GroupContext; learner: Learner } {
    const context = makeContext({ nodeId: 3, members: [1, 2, 3], instanceId, nowMs });
    return { context, learner: new Learner(context) };
  }

  function nowFrom(from: number, instanceId: number, nowInstanceId: number, minChosen = 0): SendNowInstanceIdMessage {
    return { kind: 'sendNowInstanceId', from, instanceId, nowInstanceId, minChosenInstanceId: minChosen };
  }

  test('asks every other member every 2500-2999 ms', () => {
    const { context, learner } = learnerAt(7, 100);
    const first = learner.nextTimerAt();
    assert.ok(first >= 2600 && first <= 3099, `first ask at ${first}`);
    learner.tick(first - 1);
    assert.equal(context.outbox.take().messages.length, 0);
    context.nowMs = first;
    learner.tick(first);
    const asks = ofKind(context.outbox.take().messages, 'askForLearn');
    assert.deepEqual(asks.map((outbound) => [outbound.to, outbound.message.instanceId, outbound.message.from]),
      [[1, 7, 3], [2, 7, 3]]);
    const next = learner.nextTimerAt() - first;
    assert.ok(next >= 2500 && next <= 2999, `next ask after ${next}`);
  });

  test('confirms only the first peer that answers', () => {
    const { context, learner } = learnerAt(7);
    learner.onSendNowInstanceId(nowFrom(1, 7, 40));
    learner.onSendNowInstanceId(nowFrom(2, 7, 45));
    const confirms = ofKind(context.outbox.take().messages, 'confirmAskForLearn');
    assert.deepEqual(confirms.map((outbound) => [outbound.to, outbound.message.instanceId]), [[1, 7]]);
    assert.equal(learner.isLearning, true);
    assert.equal(learner.highestSeenInstanceId, 45);
  });

  test('a session ends where the teacher was; still behind, the learner asks again within the retry delay', () => {
    const { context, learner } = learnerAt(7, 1_000);
    learner.onSendNowInstanceId(nowFrom(1, 7, 10));
    context.outbox.take();
    // The node knows it is behind (the answer says so): should the session stay silent past its
    // silence window (390 ms), it asks again (see PURSUIT_FIRST_RETRY_DELAYS); not before.
    const next = learner.nextTimerAt();
    assert.ok(next >= 1_000 + 390 + 156 && next < 2_000, `a confirmed session postpones the next ask to ${next}`);
    for (let instanceId = 8; instanceId <= 9; instanceId++) {
      context.instanceId = instanceId;
      learner.onInstanceAdvanced();
      assert.equal(learner.isLearning, true, `still streaming at ${instanceId}`);
    }
    learner.seen(25); // meanwhile the group moved on: messages for instance 25 arrived
    context.instanceId = 10;
    learner.onInstanceAdvanced();
    assert.equal(learner.isLearning, false, 'the stream reached where the teacher was');
    assert.ok(learner.nextTimerAt() <= 1_000 + 39, `asks again soon, not at ${learner.nextTimerAt()}`);
    context.nowMs = learner.nextTimerAt();
    learner.tick(context.nowMs);
    assert.equal(ofKind(context.outbox.take().messages, 'askForLearn').length, 2);
  });

  test('a streamed value puts off the ask a node behind scheduled for a silent session', () => {
    const { context, learner } = learnerAt(7, 1_000);
    learner.seen(10); // three behind: ask soon, and again while no session comes
    context.nowMs = learner.nextTimerAt();
    learner.tick(context.nowMs);
    assert.equal(ofKind(context.outbox.take().messages, 'askForLearn').length, 2);
    learner.onSendNowInstanceId(nowFrom(1, 7, 10));
    context.outbox.take();
    assert.ok(learner.nextTimerAt() < context.nowMs + 1_000, 'were the session to stay silent, an ask within a second');
    context.nowMs += 50;
    learner.ackStreamed(1, 8, 100);
    context.nowMs += 40;
    learner.tick(context.nowMs); // the held ack leaves; no ask
    assert.equal(ofKind(context.outbox.take().messages, 'askForLearn').length, 0);
    assert.ok(learner.nextTimerAt() >= context.nowMs + 2_400, `streaming: the next ask at ${learner.nextTimerAt()}`);
  });

  test('a session that ends caught up does not ask early', () => {
    const { context, learner } = learnerAt(7, 1_000);
    learner.onSendNowInstanceId(nowFrom(1, 7, 9));
    context.outbox.take();
    assert.ok(learner.nextTimerAt() < 2_000, 'behind, with a session that may fall silent: an ask is scheduled');
    context.instanceId = 9;
    learner.onInstanceAdvanced();
    assert.equal(learner.isLearning, false);
    const next = learner.nextTimerAt();
    assert.ok(next >= 1_000 + 2_500 && next < 1_000 + 3_000, `caught up: the next ask is the periodic one, at ${next}`);
  });

  test('the ask timer clears isLearning, so a later answer can be confirmed again', () => {
    const { context, learner } = learnerAt(7);
    learner.onSendNowInstanceId(nowFrom(1, 7, 40));
    context.outbox.take();
    const at = learner.nextTimerAt();
    context.nowMs = at;
    learner.tick(at);
    assert.equal(learner.isLearning, false);
    context.outbox.take();
    learner.onSendNowInstanceId(nowFrom(2, 7, 45));
    assert.equal(ofKind(context.outbox.take().messages, 'confirmAskForLearn')[0]?.to, 2);
  });

  test('ignores answers to an old question or from a peer that is not ahead', () => {
    const { context, learner } = learnerAt(7);
    learner.onSendNowInstanceId(nowFrom(1, 6, 40));
    learner.onSendNowInstanceId(nowFrom(2, 7, 7));
    assert.equal(context.outbox.take().messages.length, 0);
    assert.equal(learner.isLearning, false);
  });

  test('a peer whose log starts above this node marks the need for a checkpoint', () => {
    const { context, learner } = learnerAt(7);
    learner.onSendNowInstanceId(nowFrom(2, 7, 400, 100));
    assert.equal(learner.needsCheckpointFrom, 2);
    assert.equal(context.outbox.take().messages.length, 0);
    assert.equal(learner.isLearning, false);
  });

  test('is latest up to one behind; seeing two ahead asks within retryDelayMaxMs', () => {
    const { context, learner } = learnerAt(7, 1000);
    learner.seen(8);
    assert.equal(learner.isLatest, true);
    assert.ok(learner.nextTimerAt() >= 3500, 'one behind does not hurry');
    learner.seen(9);
    assert.equal(learner.isLatest, false);
    assert.ok(learner.nextTimerAt() >= 1000 && learner.nextTimerAt() <= 1039, `ask at ${learner.nextTimerAt()}`);
    learner.seen(3);
    assert.equal(learner.highestSeenInstanceId, 9, 'seen never goes down');
    context.instanceId = 8;
    assert.equal(learner.isLatest, true);
  });

  test('acks streamed values every learnAckLead instances, after persistence', () => {
    const { context, learner } = learnerAt(0);
    const acked: number[] = [];
    for (let next = 1; next <= 120; next++) {
      learner.ackStreamed(1, next, 10);
      for (const outbound of ofKind(context.outbox.take().messages, 'learnValueAck')) {
        assert.equal(outbound.afterPersist, true);
        assert.equal(outbound.to, 1);
        acked.push(outbound.message.instanceId);
      }
    }
    assert.deepEqual(acked, [49, 99], 'learnAckLead is 50 by default');
  });

  test('acks large values once LEARN_ACK_BYTES (a quarter of the teacher\'s budget) came since the last ack', () => {
    const { context, learner } = learnerAt(0);
    const valueBytes = 1024 * 1024;
    assert.equal(LEARN_ACK_BYTES, TEACH_BYTES_BEYOND_ACK / 4);
    const acked: number[] = [];
    for (let next = 1; next <= 12; next++) {
      learner.ackStreamed(1, next, valueBytes);
      acked.push(...ofKind(context.outbox.take().messages, 'learnValueAck').map((ack) => ack.message.instanceId));
    }
    assert.deepEqual(acked, [4, 8, 12], 'an ack every 4 MiB of values, long before 50 instances');
  });

  test('a held ack goes to the teacher of the open session, not to a late value of an older one', () => {
    const { context, learner } = learnerAt(10, 1000);
    learner.onSendNowInstanceId({
      kind: 'sendNowInstanceId', from: 2, instanceId: 10, nowInstanceId: 40, minChosenInstanceId: 0,
    });
    context.outbox.take();
    learner.ackStreamed(2, 11, 10);
    learner.ackStreamed(1, 12, 10);
    context.nowMs = learner.nextTimerAt();
    learner.tick(context.nowMs);
    const acks = ofKind(context.outbox.take().messages, 'learnValueAck');
    assert.deepEqual(acks.map((ack) => [ack.to, ack.message.instanceId]), [[2, 12]]);
  });

  test('an ack the rule holds back leaves QUIET_ACK_RETRY_DELAYS after the first value it held, to its sender outside a session', () => {
    const { context, learner } = learnerAt(0, 1000);
    const quietMs = QUIET_ACK_RETRY_DELAYS * DEFAULT_TIMING.retryDelayMaxMs;
    learner.ackStreamed(1, 1, 10);
    context.nowMs = 1010;
    learner.ackStreamed(1, 2, 10);
    assert.equal(ofKind(context.outbox.take().messages, 'learnValueAck').length, 0, 'two values: the rule waits');
    assert.ok(learner.nextTimerAt() === 1000 + quietMs, `the timer is due at ${learner.nextTimerAt()}`);
    learner.tick(1000 + quietMs - 1);
    assert.equal(ofKind(context.outbox.take().messages, 'learnValueAck').length, 0);
    context.nowMs = 1000 + quietMs;
    learner.tick(context.nowMs);
    const [ack, ...more] = ofKind(context.outbox.take().messages, 'learnValueAck');
    assert.equal(more.length, 0);
    assert.equal(ack?.to, 1);
    assert.equal(ack?.message.instanceId, 2, 'it names the next instance the learner needs');
    assert.equal(ack?.afterPersist, true, 'and leaves only after the records of its Ready are durable');
    assert.ok(learner.nextTimerAt() > context.nowMs + 2000, 'nothing is held any more: the periodic ask is next');
    // The rule counts again from that ack: 49 more values, then the 50th acks by itself.
    for (let next = 3; next < 52; next++) learner.ackStreamed(1, next, 10);
    assert.equal(ofKind(context.outbox.take().messages, 'learnValueAck').length, 0);
    learner.ackStreamed(1, 52, 10);
    assert.deepEqual(ofKind(context.outbox.take().messages, 'learnValueAck').map((a) => a.message.instanceId), [52]);
  });
});

describe('Catch-up between cores', () => {

  test('a node that missed 30 instances learns them through one teacher, within the ack window', () => {
    const harness = new CoreHarness({ nodes: 3, seed: 5, timing: SMALL_WINDOW });
    const values = range(0, 30).map((index) => `value-${index}`);
    for (const value of values) {
      harness.propose(1, value);
      stabilizeWithout(harness, 3);
    }
    assert.deepEqual(harness.executedValues(1), values);
    assert.equal(harness.node(3).core.nowInstanceId, 0);

    // Node 3 asks; both peers answer; node 3 confirms the first and the stream starts.
    const askAt = harness.node(3).core.nextTimerAt() ?? NaN;
    harness.tick(askAt - harness.nowMs);
    assert.equal(harness.pending({ kind: 'askForLearn', from: 3 }).length, 2);
    harness.deliver({ kind: 'askForLearn', from: 3 });
    assert.equal(harness.pending({ kind: 'sendNowInstanceId', to: 3 }).length, 2);
    harness.deliver({ kind: 'sendNowInstanceId', to: 3 });
    const confirms = harness.pending({ kind: 'confirmAskForLearn', from: 3 });
    assert.equal(confirms.length, 1, 'only the first responder is confirmed');
    const teacher = confirms[0]?.to;
    harness.deliver({ kind: 'confirmAskForLearn' });
    const streamed = harness.pending({ kind: 'learnValue', to: 3 });
    assert.equal(streamed.length, 21, 'the teacher runs at most 21 ahead of the last ack');
    assert.ok(streamed.every((entry) => entry.message.from === teacher));

    harness.stabilize();
    assert.deepEqual(harness.executedValues(3), values);
    assert.equal(harness.node(3).core.nowInstanceId, 30);
    const durable = harness.node(3).durable.get(29);
    assert.equal(text(durable === undefined ? undefined : proposalBody(durable.value)), 'value-29', 'learned values are persisted');
    assert.equal(durable?.checksum, harness.node(1).durable.get(29)?.checksum, 'and chained identically');
  });

  test('values streamed together are written ahead in one write, each once, and replayable', () => {
    const harness = new CoreHarness({ nodes: 3, seed: 9 });
    const values = range(0, 60).map((index) => `value-${index}`);
    for (const value of values) {
      harness.propose(1, value);
      stabilizeWithout(harness, 3);
    }
    const learner = harness.node(3);
    const before = learner.writeBatches;
    harness.tick((learner.core.nextTimerAt() ?? NaN) - harness.nowMs);
    // Messages reach node 3 in bursts, as a socket delivers them: all are stepped, then handled.
    for (let round = 0; round < 100 && harness.network.length > 0; round++) {
      harness.stepOnly({ to: 3 });
      harness.process(3);
      harness.deliver({}, harness.pending().filter((entry) => entry.to !== 3).length);
    }
    harness.stabilize();
    assert.deepEqual(harness.executedValues(3), values);
    const written = learner.writes.filter((record) => record.instanceId < 60).map((record) => record.instanceId);
    assert.deepEqual(written, range(0, 60), 'every learned instance is written once, in order');
    const batches = learner.writeBatches - before;
    assert.ok(batches <= 10, `60 instances took ${batches} writes`);
    for (const id of range(0, 60)) {
      assert.equal(learner.durable.get(id)?.checksum, harness.node(1).durable.get(id)?.checksum, `chain at ${id}`);
    }
    // A restart from those records alone resumes at the end and replays the same values.
    harness.crash(3);
    harness.restart(3);
    assert.equal(harness.node(3).core.nowInstanceId >= 59, true);
  });

  test('while it holds values written ahead of its instance, the acceptor does not vote', () => {
    const harness = new CoreHarness({ nodes: 3, seed: 11 });
    for (const value of range(0, 10).map((index) => `v${index}`)) {
      harness.propose(1, value);
      stabilizeWithout(harness, 3);
    }
    const learner = harness.node(3);
    // Node 3 learns instance 0 but cannot execute it, so it stays there holding 1..9 written ahead.
    learner.failExecutions = true;
    harness.tick((learner.core.nextTimerAt() ?? NaN) - harness.nowMs);
    for (let round = 0; round < 6; round++) harness.deliver({}, harness.network.length);
    assert.equal(learner.core.nowInstanceId, 0);
    assert.ok(learner.durable.has(9), 'instance 9 is written ahead');
    harness.inject(3, { kind: 'prepare', from: 2, instanceId: 0, ballot: { proposalId: 10_000, nodeId: 2 } });
    harness.process();
    assert.equal(harness.pending({ from: 3, kind: 'prepareReply' }).length, 0, 'no promise while holding ahead');
    assert.ok((learner.durable.get(9)?.promised.proposalId ?? 0) < 10_000, 'no higher promise below the newest record');
    learner.failExecutions = false;
    harness.tick(1_000);
    harness.stabilize();
    assert.deepEqual(harness.executedValues(3), harness.executedValues(1));
  });
});
