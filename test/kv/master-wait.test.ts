// The wait of a plain HTTP request for its group's master (src/kv/master-wait.ts), with scripted
// attempts: which refusals are tried again, that the deadline and the caller leaving end the wait,
// and that the answer is whatever the last attempt gave.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KvError, NOT_APPLIED } from '../../src/kv/kv-error.js';
import { RawJson, type Reply } from '../../src/kv/http-reply.js';
import { MASTER_SILENT } from '../../src/kv/http-forward.js';
import { PEER_CONNECTION_LOST } from '../../src/kv/peer-forward.js';
import {
  FIRST_PAUSE_MS, isRetriedRefusal, isRetriedReply, LAST_PAUSE_MS, MIN_ATTEMPT_MS, READ_ATTEMPT_MS, readAttemptMs,
  untilMasterAnswers, type MasterWait,
} from '../../src/kv/master-wait.js';

const OK: Reply = { status: 200, body: { key: 'k', version: 1 } };

/** A master's refusal as a forwarded request brings it back: a 503 with its JSON. */
function passedOn(error: string, mayHaveBeenApplied: boolean): Reply {
  return { status: 503, body: new RawJson(Buffer.from(JSON.stringify({ error, message: 'm', mayHaveBeenApplied }))) };
}

/** Runs `outcomes` in turn (an Error is thrown, a Reply returned), recording the time given to each. */
function scripted(outcomes: readonly (Reply | Error)[]): { attempt: (ms: number) => Promise<Reply>; given: number[] } {
  const given: number[] = [];
  return {
    given,
    attempt: (remainingMs) => {
      const outcome = outcomes[given.length];
      given.push(remainingMs);
      if (outcome === undefined) throw new Error('attempted once too often');
      return outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve(outcome);
    },
  };
}

function waitOf(timeoutMs: number, signal?: AbortSignal): { wait: MasterWait; retries: () => number } {
  let retries = 0;
  return {
    wait: { began: performance.now(), timeoutMs, signal, onRetry: () => { retries++; } },
    retries: () => retries,
  };
}

/** What a forward that could not connect to the master raises (http-forward.ts). */
function refusedConnection(): KvError {
  const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
  return new KvError('UNAVAILABLE', 'forwarding to the master failed', { mayHaveBeenApplied: false, cause });
}

test('NO_MASTER, NOT_MASTER and a master that refuses connections, having changed nothing, are tried again', async () => {
  const { attempt, given } = scripted([
    new KvError('NO_MASTER', 'no master', NOT_APPLIED),
    refusedConnection(),
    passedOn('NOT_MASTER', false),
    new KvError('NOT_MASTER', 'endpoint not known yet', NOT_APPLIED),
    OK,
  ]);
  const { wait, retries } = waitOf(5_000);
  const began = performance.now();
  assert.equal(await untilMasterAnswers(wait, attempt, isRetriedReply), OK);
  assert.equal(given.length, 5);
  assert.equal(retries(), 4);
  // The pauses double, each jittered to between half and one and a half times: 20, 40, 80, 160 ms.
  const pauses = FIRST_PAUSE_MS * (1 + 2 + 4 + 8);
  const elapsed = performance.now() - began;
  assert.ok(elapsed >= pauses / 2 - 5 && elapsed < pauses * 1.5 + 500, `${Math.round(elapsed)} ms`);
  // Each attempt is given what is left of the caller's time, less each time.
  assert.ok(given.every((ms, index) => ms <= 5_000 && (index === 0 || ms < (given[index - 1] as number))), `${given}`);
});

test('anything that may have been applied, or that waiting cannot mend, is the answer at once', async () => {
  const once: (Reply | Error)[] = [
    new KvError('TIMEOUT', 'sent, no answer', { mayHaveBeenApplied: true }),
    new KvError('UNAVAILABLE', 'the forward failed after it was sent',
      { mayHaveBeenApplied: true, cause: (refusedConnection().cause as Error) }),
    // A master that went silent lately is not forwarded to for a while: callers must not all wait on it.
    new KvError('UNAVAILABLE', 'the master did not answer lately; not forwarding to it for now', NOT_APPLIED),
    new KvError('UNAVAILABLE', 'not forwarding over plain HTTP (credentials)', NOT_APPLIED),
    new KvError('UNAVAILABLE', 'the node is starting', NOT_APPLIED),
    // A connection reset on an HTTP forward may be a wrong protocol (HTTP to an HTTPS port): answered.
    new KvError('UNAVAILABLE', 'socket hang up', {
      mayHaveBeenApplied: false, cause: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    }),
    // A write whose transport connection to the master went may have been applied: never retried.
    new KvError('UNAVAILABLE', 'the connection to the master closed before its reply', {
      mayHaveBeenApplied: true, cause: Object.assign(new Error('closed'), { code: PEER_CONNECTION_LOST }),
    }),
    // Only a refused connection (nothing listening) is tried again: a wrong host does not mend.
    new KvError('UNAVAILABLE', 'getaddrinfo ENOTFOUND', {
      mayHaveBeenApplied: false, cause: Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }),
    }),
    new KvError('NO_MASTER', 'a site that did not say'),
    new KvError('OVERLOADED', 'too many', NOT_APPLIED),
    new KvError('STORAGE_UNAVAILABLE', 'disk full', NOT_APPLIED),
    new KvError('VERSION_CONFLICT', 'version 3', { ...NOT_APPLIED, version: 3 }),
    new Error('not a KvError'),
    passedOn('NOT_MASTER', true),
    passedOn('TIMEOUT', false),
    passedOn('UNAVAILABLE', true),
    { status: 503, body: new RawJson(Buffer.from('not json')) },
    { status: 503, body: { error: 'NO_MASTER', mayHaveBeenApplied: false } },
    { status: 404, body: new RawJson(Buffer.from('{"error":"KEY_NOT_FOUND","mayHaveBeenApplied":false}')) },
  ];
  for (const outcome of once) {
    const { attempt, given } = scripted([outcome]);
    const { wait, retries } = waitOf(5_000);
    if (outcome instanceof Error) {
      await assert.rejects(untilMasterAnswers(wait, attempt, isRetriedReply), (error) => error === outcome);
    } else {
      assert.equal(await untilMasterAnswers(wait, attempt, isRetriedReply), outcome);
    }
    assert.equal(given.length, 1, String(outcome instanceof Error ? outcome.message : JSON.stringify(outcome.body)));
    assert.equal(retries(), 0);
  }
});

test('the deadline ends the wait with the last refusal, before the caller gives up', async () => {
  const refusal = new KvError('NO_MASTER', 'no master', NOT_APPLIED);
  const attempt = (): Promise<Reply> => Promise.reject(refusal);
  const { wait, retries } = waitOf(1_000);
  const began = performance.now();
  await assert.rejects(untilMasterAnswers(wait, attempt), (error) => error === refusal);
  const elapsed = performance.now() - began;
  // No new attempt starts with less than MIN_ATTEMPT_MS left after its pause (at most 1.5 times
  // the last), so the answer comes before the caller's 1,000 ms (give or take a late timer on a
  // loaded machine: the margin is MIN_ATTEMPT_MS), and not much earlier.
  assert.ok(elapsed <= 1_000 + 100 && elapsed >= 1_000 - MIN_ATTEMPT_MS - LAST_PAUSE_MS * 1.5,
    `${Math.round(elapsed)} ms`);
  assert.ok(retries() >= 3, `${retries()} retries`);
  // A passed-on refusal is the answer the same way.
  const reply = passedOn('NO_MASTER', false);
  const { wait: short } = waitOf(120);
  assert.equal(await untilMasterAnswers(short, () => Promise.resolve(reply), isRetriedReply), reply);
  // Without a predicate for answers, only thrown refusals are tried again.
  const { attempt: once, given } = scripted([reply]);
  assert.equal(await untilMasterAnswers(waitOf(5_000).wait, once), reply);
  assert.equal(given.length, 1);
});

test('a group without a master here for longer than an election is answered at once (a minority side)', async () => {
  const refusal = new KvError('NO_MASTER', 'no master', NOT_APPLIED);
  let hopeless = true;
  let attempts = 0;
  const attempt = (): Promise<Reply> => {
    attempts++;
    return Promise.reject(refusal);
  };
  const began = performance.now();
  await assert.rejects(untilMasterAnswers({ ...waitOf(5_000).wait, hopeless: () => hopeless }, attempt),
    (error) => error === refusal);
  assert.equal(attempts, 1);
  assert.ok(performance.now() - began < 100, 'not held');
  // Hope lost while waiting: the next refusal is the answer.
  hopeless = false;
  attempts = 0;
  setTimeout(() => { hopeless = true; }, 150);
  await assert.rejects(untilMasterAnswers({ ...waitOf(5_000).wait, hopeless: () => hopeless }, attempt),
    (error) => error === refusal);
  assert.ok(attempts >= 2 && performance.now() - began < 1_500, `${attempts} attempts`);
});

test('a caller that goes away ends the wait at once', async () => {
  const abort = new AbortController();
  const refusal = new KvError('NO_MASTER', 'no master', NOT_APPLIED);
  let attempts = 0;
  const { wait } = waitOf(10_000, abort.signal);
  setTimeout(() => abort.abort(), 100);
  const began = performance.now();
  await assert.rejects(untilMasterAnswers(wait, () => {
    attempts++;
    return Promise.reject(refusal);
  }), (error) => error === refusal);
  assert.ok(performance.now() - began < 1_000, 'not held to the deadline');
  assert.ok(attempts >= 2 && attempts <= 5, `${attempts} attempts`);
});

test('what is tried again, by code and outcome', () => {
  assert.equal(isRetriedRefusal(new KvError('NO_MASTER', 'm', NOT_APPLIED)), true);
  assert.equal(isRetriedRefusal(new KvError('NO_MASTER', 'm')), false, 'may have been applied by default');
  assert.equal(isRetriedRefusal(refusedConnection()), true);
  // A read whose transport connection to the master went (peer-forward.ts): asked again.
  assert.equal(isRetriedRefusal(new KvError('UNAVAILABLE', 'the connection to the master closed', {
    mayHaveBeenApplied: false, cause: Object.assign(new Error('closed'), { code: PEER_CONNECTION_LOST }),
  })), true);
  assert.equal(isRetriedReply(passedOn('NO_MASTER', false)), true);
  // The master restarted and is still starting: every node forwards there, so wait for the next.
  assert.equal(isRetriedReply(passedOn('UNAVAILABLE', false)), true);
  assert.equal(isRetriedReply(passedOn('UNAVAILABLE', true)), false);
  assert.equal(isRetriedReply({ status: 200, body: new RawJson(Buffer.from('{"error":"NO_MASTER","mayHaveBeenApplied":false}')) }), false);
});

test('a read also tries again after its attempt timed out, or when a silent master was not asked', () => {
  const timedOut = new KvError('TIMEOUT', 'the master did not answer', NOT_APPLIED);
  const silent = new KvError('UNAVAILABLE', 'the master did not answer lately', {
    ...NOT_APPLIED, cause: Object.assign(new Error('silent'), { code: MASTER_SILENT }),
  });
  const cleartext = new KvError('UNAVAILABLE', 'not forwarding over plain HTTP', NOT_APPLIED);
  assert.equal(isRetriedRefusal(timedOut, true), true);
  assert.equal(isRetriedRefusal(silent, true), true);
  assert.equal(isRetriedRefusal(cleartext, true), false, 'a refusal for good is the answer, even for a read');
  assert.equal(isRetriedRefusal(timedOut), false, 'not for a write (its TIMEOUT says maybe applied anyway)');
  assert.equal(isRetriedRefusal(silent), false);
  assert.equal(isRetriedRefusal(new KvError('TIMEOUT', 'maybe', { mayHaveBeenApplied: true }), true), false);
});

test('a read\'s attempt waits READ_ATTEMPT_MS for the master, the last one that fits everything left', () => {
  // Another attempt needs room for the longest pause (LAST_PAUSE_MS jittered up by half) and MIN_ATTEMPT_MS.
  const room = READ_ATTEMPT_MS + MIN_ATTEMPT_MS + 1.5 * LAST_PAUSE_MS + 50;
  assert.equal(readAttemptMs(5_000), READ_ATTEMPT_MS);
  assert.equal(readAttemptMs(room), READ_ATTEMPT_MS);
  assert.equal(readAttemptMs(room - 1), room - 1, 'no room for another attempt after the longest pause: all of it');
  assert.equal(readAttemptMs(300), 300);
});

test('a read also tries again after the master\'s own 504 TIMEOUT (it honoured the attempt\'s short time)', () => {
  const passedOn504 = (mayHaveBeenApplied: boolean): Reply => ({
    status: 504, body: new RawJson(Buffer.from(JSON.stringify({ error: 'TIMEOUT', message: 'm', mayHaveBeenApplied }))),
  });
  assert.equal(isRetriedReply(passedOn504(false), true), true);
  assert.equal(isRetriedReply(passedOn504(false)), false, 'not for a write');
  assert.equal(isRetriedReply(passedOn504(true), true), false, 'maybe applied: never');
  assert.equal(isRetriedReply(passedOn('NO_MASTER', false), true), true, 'the 503s as before');
});

test('a read held by a frozen master: attempts time out, are tried again and the next master answers', async () => {
  // What the HTTP server does for a plain read: each attempt gives the master readAttemptMs.
  const { wait } = waitOf(3_000);
  let attempt = 0;
  const began = performance.now();
  const answer = await untilMasterAnswers({ ...wait, readOnly: true }, async (remainingMs) => {
    attempt++;
    if (attempt === 1) {
      // The frozen master: nothing comes back within the attempt's time.
      await new Promise((resolve) => setTimeout(resolve, Math.min(readAttemptMs(remainingMs), 300)));
      throw new KvError('TIMEOUT', 'the master did not answer', NOT_APPLIED);
    }
    if (attempt < 4) {
      throw new KvError('UNAVAILABLE', 'silent', {
        ...NOT_APPLIED, cause: Object.assign(new Error('silent'), { code: MASTER_SILENT }),
      });
    }
    return 'the next master answered';
  });
  assert.equal(answer, 'the next master answered');
  assert.equal(attempt, 4);
  assert.ok(performance.now() - began < 2_000);
});
