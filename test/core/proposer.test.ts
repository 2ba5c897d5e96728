// Unit tests of the proposer, after PhxPaxos src/ut/proposer_ut.cpp.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NULL_BALLOT, type Ballot } from '../../src/core/ballot.js';
import type { GroupContext } from '../../src/core/group-context.js';
import type { AcceptMessage, PrepareMessage } from '../../src/core/messages.js';
import { Proposer, type ProposerHost } from '../../src/core/proposer.js';
import type { OutboundMessage } from '../../src/core/ready.js';
import { utf8 } from '../../src/util/bytes.js';
import {
  acceptOkMsg, acceptRejectMsg, ballot, makeContext, ofKind, prepareRejectMsg, promiseMsg, text, type ContextOptions,
} from './fixtures.js';

class FakeHost implements ProposerHost {
  readonly local: (PrepareMessage | AcceptMessage)[] = [];
  readonly chosen: Ballot[] = [];
  /** Outbox length at each local delivery, to check ordering against the broadcast. */
  readonly outboxAtLocal: number[] = [];
  constructor(private readonly context: GroupContext, private readonly sent: OutboundMessage[]) {}

  deliverToLocalAcceptor(message: PrepareMessage | AcceptMessage): void {
    this.local.push(message);
    this.sent.push(...this.context.outbox.take().messages);
    this.outboxAtLocal.push(this.sent.length);
  }

  onChosenByMajority(b: Ballot): void {
    this.chosen.push(b);
  }
}

interface Fixture {
  readonly context: GroupContext;
  readonly host: FakeHost;
  readonly proposer: Proposer;
  /** Every message the proposer sent so far (drained from the outbox on each call). */
  sent(): OutboundMessage[];
}

/** A proposer on node 1 whose local acceptor promised (99, 2): it starts at proposal id 100. */
function setup(options: ContextOptions = {}, promised: Ballot = ballot(99, 2)): Fixture {
  const context = makeContext({ nodeId: 1, members: [1, 2, 3], ...options });
  const log: OutboundMessage[] = [];
  const host = new FakeHost(context, log);
  const proposer = new Proposer(context, host, promised);
  return {
    context, host, proposer,
    sent(): OutboundMessage[] {
      log.push(...context.outbox.take().messages);
      return log;
    },
  };
}

function lastPrepareBallot(fixture: Fixture): Ballot | undefined {
  const prepares = fixture.host.local.filter((message) => message.kind === 'prepare');
  return prepares[prepares.length - 1]?.ballot;
}

/** Run a full prepare round with promises from nodes 2 and 3 (majority with nobody else). */
function passPrepare(fixture: Fixture): void {
  const b = fixture.proposer.ballot;
  fixture.proposer.onPrepareReply(promiseMsg(2, fixture.context.instanceId, b));
  fixture.proposer.onPrepareReply(promiseMsg(3, fixture.context.instanceId, b));
}

describe('Proposer construction', () => {
  test('the first proposal id is the local promise + 1', () => {
    assert.equal(setup({}, ballot(41, 3)).proposer.proposalId, 42);
    assert.equal(setup({}, NULL_BALLOT).proposer.proposalId, 1);
    const fixture = setup({ nodeId: 2, members: [1, 2, 3] }, ballot(7, 1));
    assert.deepEqual(fixture.proposer.ballot, ballot(8, 2));
    assert.equal(fixture.proposer.phase, 'idle');
    assert.equal(fixture.proposer.isProposing, false);
  });
});

describe('Proposer.newValue', () => {
  test('prepares with the current ballot when nobody rejected it: local acceptor first, then the others', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    assert.equal(fixture.proposer.proposalId, 100);
    assert.equal(fixture.proposer.phase, 'preparing');
    assert.deepEqual(fixture.host.local, [{ kind: 'prepare', from: 1, instanceId: 0, ballot: ballot(100, 1) }]);
    assert.equal(fixture.host.outboxAtLocal[0], 0, 'nothing was broadcast before the local acceptor saw the prepare');
    const prepares = ofKind(fixture.sent(), 'prepare');
    assert.deepEqual(prepares.map((outbound) => outbound.to), [2, 3]);
    for (const outbound of prepares) {
      assert.equal(outbound.afterPersist, true, 'a prepare leaves only after the local promise is durable');
      assert.deepEqual(outbound.message.ballot, ballot(100, 1));
    }
  });

  test('a prepare timeout without any reject retries with the same ballot', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    fixture.context.nowMs = 2000;
    fixture.proposer.tick(2000);
    assert.equal(fixture.host.local.length, 2);
    assert.deepEqual(lastPrepareBallot(fixture), ballot(100, 1));
  });

  test('after a reject the next newValue prepares a higher ballot (100 -> 101)', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    fixture.proposer.onPrepareReply(prepareRejectMsg(2, 0, ballot(100, 1), 100));
    assert.equal(fixture.proposer.wasRejected, true);
    fixture.proposer.exitPhase();
    fixture.proposer.newValue(utf8('a'));
    assert.equal(fixture.proposer.proposalId, 101);
    assert.deepEqual(lastPrepareBallot(fixture), ballot(101, 1));
  });

  test('the new ballot goes above the highest proposal id any acceptor reported', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    fixture.proposer.onPrepareReply(prepareRejectMsg(2, 0, ballot(100, 1), 150));
    fixture.proposer.onPrepareReply(prepareRejectMsg(3, 0, ballot(100, 1), 120));
    fixture.proposer.exitPhase();
    fixture.proposer.newValue(utf8('a'));
    assert.equal(fixture.proposer.proposalId, 151);
  });

  test('skips prepare when the ballot is still promised and unrejected, across instances', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    passPrepare(fixture);
    assert.equal(fixture.proposer.canSkipPrepare, true);
    fixture.proposer.onAcceptReply(acceptOkMsg(2, 0, ballot(100, 1)));
    fixture.proposer.onAcceptReply(acceptOkMsg(3, 0, ballot(100, 1)));
    assert.deepEqual(fixture.host.chosen, [ballot(100, 1)]);
    fixture.context.instanceId = 1;
    fixture.proposer.newInstance();
    assert.equal(fixture.proposer.canSkipPrepare, true, 'the promise survives into the next instance');
    const localBefore = fixture.host.local.length;
    fixture.proposer.newValue(utf8('b'));
    assert.equal(fixture.proposer.phase, 'accepting');
    const local = fixture.host.local.slice(localBefore);
    assert.deepEqual(local.map((message) => message.kind), ['accept']);
    assert.deepEqual(local[0]?.ballot, ballot(100, 1));
    assert.equal(local[0]?.instanceId, 1);
    assert.equal(ofKind(fixture.sent(), 'prepare').filter((outbound) => outbound.message.instanceId === 1).length, 0);
  });

  test('does not skip prepare once rejected, nor after cancelSkipPrepare', () => {
    const rejected = setup();
    rejected.proposer.newValue(utf8('a'));
    passPrepare(rejected);
    rejected.proposer.onAcceptReply(acceptRejectMsg(2, 0, ballot(100, 1), 300));
    rejected.proposer.exitPhase();
    rejected.proposer.newValue(utf8('a'));
    assert.equal(rejected.proposer.phase, 'preparing');
    assert.deepEqual(lastPrepareBallot(rejected), ballot(301, 1));

    const cancelled = setup();
    cancelled.proposer.newValue(utf8('a'));
    passPrepare(cancelled);
    cancelled.proposer.exitPhase();
    cancelled.proposer.cancelSkipPrepare();
    cancelled.proposer.newValue(utf8('a'));
    assert.equal(cancelled.proposer.phase, 'preparing');
  });

  test('the first value of an instance sticks until the instance is decided', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('first'));
    fixture.proposer.exitPhase();
    fixture.proposer.newValue(utf8('second'));
    assert.equal(text(fixture.proposer.value), 'first');
    fixture.context.instanceId = 1;
    fixture.proposer.newInstance();
    assert.equal(fixture.proposer.value, null);
    fixture.proposer.newValue(utf8('third'));
    assert.equal(text(fixture.proposer.value), 'third');
  });
});

describe('Proposer.onPrepareReply', () => {
  test('is ignored when not preparing', () => {
    const fixture = setup();
    fixture.proposer.onPrepareReply(promiseMsg(2, 0, ballot(100, 1)));
    fixture.proposer.onPrepareReply(prepareRejectMsg(3, 0, ballot(100, 1), 500));
    assert.equal(fixture.proposer.phase, 'idle');
    assert.equal(fixture.proposer.wasRejected, false);
    // Once accepting, a late prepare reject changes nothing either.
    fixture.proposer.newValue(utf8('a'));
    passPrepare(fixture);
    fixture.proposer.onPrepareReply(prepareRejectMsg(2, 0, ballot(100, 1), 500));
    assert.equal(fixture.proposer.phase, 'accepting');
    assert.equal(fixture.proposer.wasRejected, false);
  });

  test('is ignored for another ballot (other proposal id or other node)', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    for (const other of [ballot(99, 1), ballot(101, 1), ballot(100, 2)]) {
      fixture.proposer.onPrepareReply(promiseMsg(2, 0, other));
      fixture.proposer.onPrepareReply(promiseMsg(3, 0, other));
      fixture.proposer.onPrepareReply(prepareRejectMsg(3, 0, other, 700));
    }
    assert.equal(fixture.proposer.phase, 'preparing');
    assert.equal(fixture.proposer.wasRejected, false);
    assert.equal(fixture.host.local.filter((message) => message.kind === 'accept').length, 0);
  });

  test('counts each node once', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    fixture.proposer.onPrepareReply(promiseMsg(2, 0, ballot(100, 1)));
    fixture.proposer.onPrepareReply(promiseMsg(2, 0, ballot(100, 1)));
    assert.equal(fixture.proposer.phase, 'preparing', 'a duplicate promise is not a majority');
  });

  test('a majority of promises adopts the highest pre-accepted value and starts accepting', () => {
    const fixture = setup({ members: [1, 2, 3, 4, 5] });
    const mine = ballot(100, 1);
    fixture.proposer.newValue(utf8('mine'));
    fixture.proposer.onPrepareReply(promiseMsg(2, 0, mine, ballot(50, 3), 'x'));
    assert.equal(text(fixture.proposer.value), 'x');
    fixture.proposer.onPrepareReply(promiseMsg(3, 0, mine, ballot(70, 4), 'y'));
    assert.equal(fixture.proposer.phase, 'preparing', 'two of five is no majority');
    fixture.sent();
    fixture.proposer.onPrepareReply(promiseMsg(4, 0, mine, ballot(60, 5), 'z'));
    assert.equal(text(fixture.proposer.value), 'y', 'the highest pre-accepted ballot wins, not the latest');
    assert.equal(fixture.proposer.phase, 'accepting');
    assert.equal(fixture.proposer.canSkipPrepare, true);
    const accepts = ofKind(fixture.sent(), 'accept');
    assert.deepEqual(accepts.map((outbound) => outbound.to), [2, 3, 4, 5]);
    for (const outbound of accepts) {
      assert.equal(text(outbound.message.value), 'y');
      assert.deepEqual(outbound.message.ballot, mine);
      assert.equal(outbound.afterPersist, false, 'the accept broadcast need not wait for the local write');
    }
    const localAccept = fixture.host.local[fixture.host.local.length - 1];
    assert.equal(localAccept?.kind, 'accept');
    const prepares = ofKind(fixture.sent(), 'prepare');
    assert.equal(fixture.host.outboxAtLocal[fixture.host.outboxAtLocal.length - 1], prepares.length + accepts.length,
      'the local acceptor gets the accept after the broadcast');
    assert.equal(fixture.proposer.hasSentAccept, true);
  });

  test('promises without an accepted value keep the own value', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('mine'));
    passPrepare(fixture);
    assert.equal(text(fixture.proposer.value), 'mine');
  });

  test('the accept carries the instance and the checksum chain', () => {
    const fixture = setup({ instanceId: 9, lastChecksum: 4242 });
    fixture.proposer.newValue(utf8('a'));
    passPrepare(fixture);
    const [accept] = ofKind(fixture.sent(), 'accept');
    assert.equal(accept?.message.instanceId, 9);
    assert.equal(accept?.message.lastChecksum, 4242);
  });

  test('a majority of rejects arms a 10-39 ms retry and keeps the value', () => {
    const delays = new Set<number>();
    for (let seed = 1; seed <= 200; seed++) {
      const fixture = setup({ seed, nowMs: 5000 });
      fixture.proposer.newValue(utf8('a'));
      fixture.proposer.onPrepareReply(prepareRejectMsg(2, 0, ballot(100, 1), 120));
      const wait = (fixture.proposer.nextTimerAt() ?? NaN) - 5000;
      assert.ok(wait >= 156 + 10 && wait <= 156 + 39,
        `one reject out of three is not yet a failed round: it waits ${wait} ms for node 3, not the 2 s timeout`);
      fixture.proposer.onPrepareReply(prepareRejectMsg(3, 0, ballot(100, 1), 110));
      const delay = (fixture.proposer.nextTimerAt() ?? NaN) - 5000;
      assert.ok(delay >= 10 && delay <= 39, `retry delay ${delay}`);
      delays.add(delay);
      assert.equal(text(fixture.proposer.value), 'a');
      assert.equal(fixture.proposer.phase, 'preparing');
      fixture.context.nowMs = 5000 + delay;
      fixture.proposer.tick(5000 + delay);
      assert.deepEqual(lastPrepareBallot(fixture), ballot(121, 1), 'the retry prepares above the highest reject');
    }
    assert.ok(delays.size >= 25, `the retry delay is randomised over the range (${[...delays].join(',')})`);
  });

  test('replies from every member without a majority also fail the round', () => {
    const fixture = setup({ members: [1, 2, 3, 4], nowMs: 100 });
    fixture.proposer.newValue(utf8('a'));
    const b = ballot(100, 1);
    fixture.proposer.onPrepareReply(promiseMsg(1, 0, b));
    fixture.proposer.onPrepareReply(promiseMsg(2, 0, b));
    fixture.proposer.onPrepareReply(prepareRejectMsg(3, 0, b, 100));
    const wait = (fixture.proposer.nextTimerAt() ?? NaN) - 100;
    assert.ok(wait >= 166 && wait <= 195, `after a reject, node 4 is waited for ${wait} ms, not 2 s`);
    fixture.proposer.onPrepareReply(prepareRejectMsg(4, 0, b, 100));
    const delay = (fixture.proposer.nextTimerAt() ?? NaN) - 100;
    assert.ok(delay >= 10 && delay <= 39, `retry delay ${delay}`);
  });
});

describe('a rejected round with a member silent (exactly a majority up)', () => {
  test('a prepare rejected by the one other member up is retried a round trip later, with a higher ballot', () => {
    const fixture = setup({ nowMs: 1000 });
    fixture.proposer.newValue(utf8('a'));
    const b = ballot(100, 1);
    fixture.proposer.onPrepareReply(promiseMsg(1, 0, b));
    assert.equal(fixture.proposer.nextTimerAt(), 1000 + 2000, 'no reject: the phase timeout');
    fixture.proposer.onPrepareReply(prepareRejectMsg(2, 0, b, 140));
    const at = fixture.proposer.nextTimerAt() ?? NaN;
    assert.ok(at >= 1000 + 166 && at <= 1000 + 195, `node 3 is down: the round ends at ${at}, not at 3000`);
    fixture.context.nowMs = 1100;
    fixture.proposer.onPrepareReply(prepareRejectMsg(2, 0, b, 140));
    const end = fixture.proposer.nextTimerAt() ?? NaN;
    assert.ok(end <= at, 'a reject repeated later never moves the end out');
    fixture.context.nowMs = end;
    fixture.proposer.tick(end);
    assert.deepEqual(lastPrepareBallot(fixture), ballot(141, 1), 'above the ballot that rejected it');
  });

  test('an accept rejected by the one other member up goes back to prepare a round trip later', () => {
    const fixture = setup({ nowMs: 0 });
    fixture.proposer.newValue(utf8('a'));
    passPrepare(fixture);
    fixture.proposer.onAcceptReply(acceptOkMsg(1, 0, ballot(100, 1)));
    assert.equal(fixture.proposer.nextTimerAt(), 1000, 'no reject: the accept timeout');
    fixture.proposer.onAcceptReply(acceptRejectMsg(2, 0, ballot(100, 1), 150));
    const at = fixture.proposer.nextTimerAt() ?? NaN;
    assert.ok(at >= 166 && at <= 195, `node 3 is down: the round ends at ${at}, not at 1000`);
    fixture.context.nowMs = at;
    fixture.proposer.tick(at);
    assert.deepEqual(lastPrepareBallot(fixture), ballot(151, 1));
    assert.deepEqual(fixture.host.chosen, []);
  });

  test('each rejected round of an instance waits twice as long as the last; a new instance starts over', () => {
    const fixture = setup({ nowMs: 0 });
    fixture.proposer.newValue(utf8('a'));
    const waits: number[] = [];
    for (let round = 0; round < 3; round++) {
      const b = fixture.proposer.ballot;
      const now = fixture.context.nowMs;
      fixture.proposer.onPrepareReply(prepareRejectMsg(2, 0, b, b.proposalId + 10));
      const at = fixture.proposer.nextTimerAt() ?? NaN;
      waits.push(at - now);
      fixture.context.nowMs = at;
      fixture.proposer.tick(at);
    }
    assert.ok(waits[0]! >= 166 && waits[0]! <= 195, `first wait ${waits[0]}`);
    assert.ok(waits[1]! >= 312 + 10 && waits[1]! <= 312 + 39, `second wait ${waits[1]}`);
    assert.ok(waits[2]! >= 624 + 10 && waits[2]! <= 624 + 39, `third wait ${waits[2]}`);
    fixture.proposer.newInstance();
    fixture.context.instanceId = 1;
    fixture.proposer.newValue(utf8('b'));
    const now = fixture.context.nowMs;
    fixture.proposer.onPrepareReply(prepareRejectMsg(2, 1, fixture.proposer.ballot, 500));
    const wait = (fixture.proposer.nextTimerAt() ?? NaN) - now;
    assert.ok(wait >= 166 && wait <= 195, `a new instance waits ${wait} again`);
  });

  test('a round with a timeout sooner than the wait keeps it', () => {
    const fixture = setup({ nowMs: 0, timing: { prepareTimeoutStartMs: 100 } });
    fixture.proposer.newValue(utf8('a'));
    fixture.proposer.onPrepareReply(prepareRejectMsg(2, 0, ballot(100, 1), 120));
    assert.equal(fixture.proposer.nextTimerAt(), 100);
  });
});

describe('Proposer.onAcceptReply', () => {
  test('is ignored when not accepting or for another ballot', () => {
    const fixture = setup();
    fixture.proposer.onAcceptReply(acceptOkMsg(2, 0, ballot(100, 1)));
    fixture.proposer.onAcceptReply(acceptOkMsg(3, 0, ballot(100, 1)));
    assert.deepEqual(fixture.host.chosen, []);
    fixture.proposer.newValue(utf8('a'));
    fixture.proposer.onAcceptReply(acceptOkMsg(2, 0, ballot(100, 1)));
    fixture.proposer.onAcceptReply(acceptOkMsg(3, 0, ballot(100, 1)));
    assert.deepEqual(fixture.host.chosen, [], 'accept replies while preparing are ignored');
    passPrepare(fixture);
    for (const other of [ballot(99, 1), ballot(100, 3)]) {
      fixture.proposer.onAcceptReply(acceptOkMsg(2, 0, other));
      fixture.proposer.onAcceptReply(acceptOkMsg(3, 0, other));
      fixture.proposer.onAcceptReply(acceptRejectMsg(3, 0, other, 900));
    }
    assert.deepEqual(fixture.host.chosen, []);
    assert.equal(fixture.proposer.wasRejected, false);
    assert.equal(fixture.proposer.phase, 'accepting');
  });

  test('a majority of rejects arms a short retry that prepares a new ballot (not a new accept)', () => {
    const fixture = setup({ nowMs: 0 });
    fixture.proposer.newValue(utf8('a'));
    passPrepare(fixture);
    fixture.proposer.onAcceptReply(acceptRejectMsg(2, 0, ballot(100, 1), 130));
    fixture.proposer.onAcceptReply(acceptRejectMsg(3, 0, ballot(100, 1), 100));
    const at = fixture.proposer.nextTimerAt() ?? NaN;
    assert.ok(at >= 10 && at <= 39, `retry at ${at}`);
    assert.equal(fixture.proposer.canSkipPrepare, true);
    const localBefore = fixture.host.local.length;
    fixture.context.nowMs = at;
    fixture.proposer.tick(at);
    const next = fixture.host.local.slice(localBefore);
    assert.deepEqual(next.map((message) => message.kind), ['prepare']);
    assert.deepEqual(next[0]?.ballot, ballot(131, 1));
    assert.equal(fixture.proposer.canSkipPrepare, false);
    assert.equal(text(fixture.proposer.value), 'a');
    assert.deepEqual(fixture.host.chosen, []);
  });

  test('a majority of accepts reports the ballot as chosen and goes idle', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    passPrepare(fixture);
    fixture.proposer.onAcceptReply(acceptOkMsg(2, 0, ballot(100, 1)));
    assert.deepEqual(fixture.host.chosen, []);
    fixture.proposer.onAcceptReply(acceptOkMsg(3, 0, ballot(100, 1)));
    assert.deepEqual(fixture.host.chosen, [ballot(100, 1)]);
    assert.equal(fixture.proposer.phase, 'idle');
    assert.equal(fixture.proposer.nextTimerAt(), undefined, 'no timer is left behind');
    fixture.proposer.onAcceptReply(acceptOkMsg(1, 0, ballot(100, 1)));
    assert.equal(fixture.host.chosen.length, 1, 'late accepts do not report it twice');
  });

  test('an expired reject still teaches the proposer to use a higher ballot', () => {
    const fixture = setup();
    fixture.proposer.onExpiredReply(acceptRejectMsg(2, 0, ballot(100, 1), 400));
    assert.equal(fixture.proposer.wasRejected, true);
    fixture.proposer.newValue(utf8('a'));
    assert.equal(fixture.proposer.proposalId, 401);
    const other = setup();
    other.proposer.onExpiredReply(acceptRejectMsg(2, 0, ballot(7, 1), 400));
    other.proposer.onExpiredReply(acceptOkMsg(2, 0, ballot(100, 1)));
    assert.equal(other.proposer.wasRejected, false, 'replies about another ballot or accepts teach nothing');
  });
});

describe('Proposer timers', () => {
  test('prepare timeouts double up to the cap; newValue resets them', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    let now = 0;
    const intervals: number[] = [];
    for (let round = 0; round < 4; round++) {
      const at = fixture.proposer.nextTimerAt() ?? NaN;
      intervals.push(at - now);
      now = at;
      fixture.context.nowMs = now;
      fixture.proposer.tick(now);
    }
    assert.deepEqual(intervals, [2000, 4000, 8000, 8000]);
    assert.equal(fixture.host.local.length, 5, 'each timeout sends a new prepare');
    fixture.proposer.exitPhase();
    fixture.proposer.newValue(utf8('a'));
    assert.equal((fixture.proposer.nextTimerAt() ?? NaN) - now, 2000);
  });

  test('accept timeouts double up to the cap, and each one goes back to prepare', () => {
    const fixture = setup({ timing: { acceptTimeoutStartMs: 1000, acceptTimeoutMaxMs: 3000 } });
    fixture.proposer.newValue(utf8('a'));
    const intervals: number[] = [];
    let now = 0;
    for (let round = 0; round < 3; round++) {
      passPrepare(fixture);
      assert.equal(fixture.proposer.phase, 'accepting');
      const at = fixture.proposer.nextTimerAt() ?? NaN;
      intervals.push(at - now);
      now = at;
      fixture.context.nowMs = now;
      fixture.proposer.tick(now);
      assert.equal(fixture.proposer.phase, 'preparing');
    }
    assert.deepEqual(intervals, [1000, 2000, 3000]);
  });

  test('a ballot that already carried an accept is never prepared again in the same instance', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    passPrepare(fixture);
    const at = fixture.proposer.nextTimerAt() ?? NaN;
    fixture.context.nowMs = at;
    fixture.proposer.tick(at);
    assert.equal(fixture.proposer.wasRejected, false);
    assert.deepEqual(lastPrepareBallot(fixture), ballot(101, 1), 'no reject, yet a fresh ballot');
    // In the next instance the same rule does not apply: no accept left with 101 there yet.
    passPrepare(fixture);
    fixture.proposer.onAcceptReply(acceptOkMsg(2, 0, ballot(101, 1)));
    fixture.proposer.onAcceptReply(acceptOkMsg(3, 0, ballot(101, 1)));
    fixture.context.instanceId = 1;
    fixture.proposer.newInstance();
    fixture.proposer.cancelSkipPrepare();
    fixture.proposer.newValue(utf8('b'));
    assert.deepEqual(lastPrepareBallot(fixture), ballot(101, 1));
  });

  test('re-proposing a sticky value with a skipped prepare reuses ballot and value', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    passPrepare(fixture);
    fixture.proposer.exitPhase();
    assert.doesNotThrow(() => fixture.proposer.newValue(utf8('b')));
    const accepts = fixture.host.local.filter((message): message is AcceptMessage => message.kind === 'accept');
    assert.equal(accepts.length, 2);
    assert.equal(text(accepts[1]?.value), 'a');
    assert.deepEqual(accepts[1]?.ballot, accepts[0]?.ballot);
  });

  test('a timer armed in an older instance does nothing', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    const at = fixture.proposer.nextTimerAt() ?? NaN;
    fixture.context.instanceId = 1;
    fixture.context.nowMs = at;
    fixture.proposer.tick(at);
    assert.equal(fixture.host.local.length, 1, 'no new prepare');
    assert.equal(fixture.proposer.nextTimerAt(), undefined, 'the stale timer is gone');
  });

  test('an idle proposer has no timer, and exitPhase removes it', () => {
    const fixture = setup();
    assert.equal(fixture.proposer.nextTimerAt(), undefined);
    fixture.proposer.newValue(utf8('a'));
    assert.notEqual(fixture.proposer.nextTimerAt(), undefined);
    fixture.proposer.exitPhase();
    assert.equal(fixture.proposer.nextTimerAt(), undefined);
    fixture.context.nowMs = 100_000;
    fixture.proposer.tick(100_000);
    assert.equal(fixture.host.local.length, 1);
  });

  test('a ticked timer before its deadline does nothing', () => {
    const fixture = setup();
    fixture.proposer.newValue(utf8('a'));
    fixture.context.nowMs = 1999;
    fixture.proposer.tick(1999);
    assert.equal(fixture.host.local.length, 1);
  });
});
