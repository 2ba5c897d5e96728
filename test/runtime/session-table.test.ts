// The session table alone: ids handed out once, the answer to a retry, old numbers refused, expiry
// by log time (never wall time), a bounded table that evicts the least recently active, and a
// capture/restore that keeps the eviction order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionTable } from '../../src/runtime/session-table.js';

test('ids are handed out in order, once; an unknown id is told apart from an expired one', () => {
  const table = new SessionTable<string>(10);
  assert.equal(table.register(100, 1_000), 1);
  assert.equal(table.register(100, 1_000), 2);
  assert.deepEqual(table.check(3, 1, 100), { kind: 'unknown' }, 'never registered');
  assert.deepEqual(table.check(2, 1, 1_200), { kind: 'expired' }, 'idle 1,100 ms of log time > 1,000');
  assert.deepEqual(table.check(2, 1, 1_200), { kind: 'expired' }, 'and stays expired: its id is never handed out again');
  assert.equal(table.register(1_200, 1_000), 3);
});

test('a retry of the last number gets its reply; an older number is stale; a higher one is new', () => {
  const table = new SessionTable<string>(10);
  const id = table.register(0, 60_000);
  assert.deepEqual(table.check(id, 1, 1), { kind: 'new' });
  table.record(id, 1, 'first');
  assert.deepEqual(table.check(id, 1, 2), { kind: 'duplicate', reply: 'first' });
  assert.deepEqual(table.check(id, 3, 3), { kind: 'new' }, 'numbers may skip');
  table.record(id, 3, 'third');
  assert.deepEqual(table.check(id, 2, 4), { kind: 'stale', lastSequence: 3 }, 'a late copy of a skipped number');
  assert.deepEqual(table.check(id, 1, 4), { kind: 'stale', lastSequence: 3 });
  assert.deepEqual(table.check(id, 3, 5), { kind: 'duplicate', reply: 'third' });
  assert.throws(() => table.record(id, 3, 'again'), /not checked as new/);
});

test('log time is the highest stamp seen: a master with a clock behind does not take it back', () => {
  const table = new SessionTable<string>(10);
  const id = table.register(10_000, 1_000);
  assert.equal(table.now, 10_000);
  // A later master's clock is 5 s behind: the session is not refreshed into the past, nor expired.
  assert.deepEqual(table.check(id, 1, 5_000), { kind: 'new' });
  assert.equal(table.now, 10_000);
  assert.deepEqual(table.check(id, 2, 10_900), { kind: 'new' }, 'active at 10,000: 900 ms idle');
  assert.deepEqual(table.check(id, 3, 11_901), { kind: 'expired' }, 'active at 10,900: 1,001 ms idle');
});

test('the table is bounded: registering beyond it evicts the least recently active, which then is expired', () => {
  const table = new SessionTable<string>(3);
  const [a, b, c] = [table.register(1, 60_000), table.register(2, 60_000), table.register(3, 60_000)];
  assert.deepEqual(table.check(a as number, 1, 4), { kind: 'new' }, 'a is now the most recently active');
  const d = table.register(5, 60_000);
  assert.equal(table.size, 3);
  assert.deepEqual(table.check(b as number, 1, 6), { kind: 'expired' }, 'b was the least recently active');
  for (const live of [a, c, d]) assert.notEqual(table.check(live as number, 1, 7).kind, 'expired');
});

test('expired sessions at the old end are dropped at the next registration, before the table fills', () => {
  const table = new SessionTable<string>(100);
  table.register(0, 10);
  table.register(0, 10);
  table.register(5, 1_000);
  table.register(100, 1_000);
  assert.equal(table.size, 2, 'the two idle past their 10 ms are gone');
});

test('capture and restore keep ids, numbers, replies, log time and the eviction order', () => {
  const table = new SessionTable<string>(2);
  const a = table.register(1, 60_000);
  const b = table.register(2, 60_000);
  table.check(a, 1, 3);
  table.record(a, 1, 'reply-a');
  const copy = new SessionTable<string>(2);
  copy.restore(table.capture());
  assert.equal(copy.now, 3);
  assert.deepEqual(copy.check(a, 1, 4), { kind: 'duplicate', reply: 'reply-a' });
  // b is the least recently active in the copy too, so it is the one a new session evicts.
  assert.equal(copy.register(5, 60_000), 3, 'the next id carries over');
  assert.deepEqual(copy.check(b, 1, 6), { kind: 'expired' });
  assert.throws(() => copy.restore({ nextId: 2, logTime: 0, sessions: [
    { id: 2, lastActiveAt: 0, ttlMs: 1, lastSequence: 0, reply: undefined }] }), RangeError);
  assert.throws(() => new SessionTable(0), RangeError);
});

test('a full table drops every expired session, even behind a live one, before it evicts a live one', () => {
  const table = new SessionTable<string>(3);
  const live = table.register(0, 10_000);
  const short = table.register(0, 10);
  const other = table.register(0, 10_000);
  // At 100, `short` expired but sits behind `live` in the activity order.
  const added = table.register(100, 10_000);
  assert.equal(table.size, 3);
  assert.deepEqual(table.check(short, 1, 100), { kind: 'expired' });
  assert.deepEqual(table.check(live, 1, 100), { kind: 'new' }, 'the live session was not evicted');
  assert.deepEqual(table.check(other, 1, 100), { kind: 'new' });
  assert.deepEqual(table.check(added, 1, 100), { kind: 'new' });
});

test('one stamp far ahead moves the log time by a minute at most: sessions do not all expire, expiry goes on', () => {
  const table = new SessionTable<string>(10);
  const session = table.register(1_000, 10 * 60_000); // ten minutes
  assert.equal(table.now, 1_000, 'the first stamp sets the log time');
  const year = 365 * 24 * 3_600_000;
  assert.deepEqual(table.check(session, 1, 1_000 + year), { kind: 'new' }, 'a clock a year ahead');
  assert.equal(table.now, 61_000);
  // The honest clocks go on: the log time follows them again, and expiry works.
  const short = table.register(62_000, 1_000);
  assert.equal(table.now, 62_000);
  assert.deepEqual(table.check(short, 1, 64_000), { kind: 'expired' });
});
