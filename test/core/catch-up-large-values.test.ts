// Catch-up of large values between cores: the teacher's byte budget (16 MiB beyond the ack) and
// the learner's acks must fit together, or every session waits out teachAckTimeoutMs.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TIMING } from '../../src/core/config.js';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { stabilizeWithout } from './fixtures.js';


/** Node 3 misses `count` values of `valueBytes` each; the simulated ms from its first ask until it holds them. */
function catchUpMs(count: number, valueBytes: number): number {
  const harness = new CoreHarness({ nodes: 3, seed: 31 });
  const filler = 'x'.repeat(valueBytes);
  for (let index = 0; index < count; index++) {
    harness.propose(1, `${index}:${filler}`);
    stabilizeWithout(harness, 3);
  }
  const learner = harness.node(3);
  assert.equal(learner.core.nowInstanceId, 0);
  harness.tick((learner.core.nextTimerAt() ?? NaN) - harness.nowMs);
  const askedAt = harness.nowMs;
  harness.runUntil(() => learner.core.nowInstanceId >= count, 60_000, 10);
  const executed = learner.executed.map((chosen) => chosen.instanceId);
  assert.deepEqual(executed, Array.from({ length: count }, (_, index) => index), 'in order, each once');
  return harness.nowMs - askedAt;
}

describe('Catch-up of large values', () => {
  test('values of 600 KB catch up about as fast as small ones (no session waits for an ack)', () => {
    const small = catchUpMs(60, 10);
    const large = catchUpMs(60, 600 * 1024);
    // A stall costs teachAckTimeoutMs (5 s) per session; a margin of a fifth of it allows for the
    // ask timers of a second session without letting a single stall through.
    assert.ok(large <= small + DEFAULT_TIMING.teachAckTimeoutMs / 5,
      `large values took ${large} ms of simulated time, small ones ${small} ms`);
  });
});
