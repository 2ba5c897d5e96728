// InlineWritePolicy: which durable writes FileLogStore makes on the loop's thread. Size cut-off,
// the moving average that pauses inline writes when the disk is slow, the pause's length, and the
// probe that either resumes them or pauses again. A hand-driven clock: no timing in the assertions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InlineWritePolicy } from '../../src/io/inline-write-policy.js';

function policy(overrides: { maxBytes?: number } = {}): { policy: InlineWritePolicy; clock: { now: number };
  pauses: number[]; } {
  const clock = { now: 0 };
  const pauses: number[] = [];
  const made = new InlineWritePolicy({
    maxBytes: overrides.maxBytes ?? 1000, slowMs: 1, pauseMs: 1000, now: () => clock.now,
    onPause: (averageMs) => pauses.push(averageMs),
  });
  return { policy: made, clock, pauses };
}

test('writes up to maxBytes go inline, larger ones do not; maxBytes 0 turns inline writes off', () => {
  const { policy: sized } = policy();
  assert.equal(sized.allows(1000), true);
  assert.equal(sized.allows(1001), false);
  const { policy: off } = policy({ maxBytes: 0 });
  assert.equal(off.allows(1), false);
});

test('fast writes keep inline writes on; an average above slowMs pauses them for pauseMs', () => {
  const { policy: guarded, clock, pauses } = policy();
  for (let i = 0; i < 100; i++) guarded.noteWrite(0.9);
  assert.equal(guarded.allows(10), true, 'just under the threshold, for ever');
  assert.deepEqual(pauses, []);
  // One 2 ms write lifts an average of 0.9 to 1.12: over 1 ms.
  guarded.noteWrite(2);
  assert.equal(pauses.length, 1);
  const [average] = pauses;
  assert.ok(average !== undefined && Math.abs(average - 1.12) < 1e-9, String(average));
  assert.equal(guarded.allows(10), false);
  clock.now = 999;
  assert.equal(guarded.allows(10), false, 'still within the pause');
});

test('a single slow write among fast ones does not pause them: the average does', () => {
  const { policy: guarded, pauses } = policy();
  for (let i = 0; i < 20; i++) guarded.noteWrite(0.1);
  guarded.noteWrite(4);
  assert.deepEqual(pauses, [], 'average 0.1 × 0.8 + 4 × 0.2 = 0.88 ms');
  guarded.noteWrite(4);
  assert.equal(pauses.length, 1, 'a second one in a row does');
});

test('after the pause one write probes: as slow as the threshold pauses again at once, a fast one resumes', () => {
  const { policy: guarded, clock, pauses } = policy();
  guarded.noteWrite(10);
  assert.equal(pauses.length, 1);
  clock.now = 1000;
  assert.equal(guarded.allows(10), true, 'the probe');
  guarded.noteWrite(1.01);
  assert.equal(pauses.length, 2, 'the probe was slow: paused again');
  assert.equal(guarded.allows(10), false);
  clock.now = 2000;
  assert.equal(guarded.allows(10), true, 'the next probe');
  guarded.noteWrite(0.2);
  assert.equal(pauses.length, 2);
  assert.equal(guarded.allows(10), true, 'fast: inline writes go on');
  clock.now = 2001;
  assert.equal(guarded.allows(10), true);
});
