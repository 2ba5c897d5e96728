// The restart policy of `cluster up` on its own: the delays of a streak of deaths, the reset after a
// long run, and giving up after five start-up failures in a row (and only those).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_RESTART_POLICY, RestartBackoff } from '../../src/cli/restart-backoff.js';

const CRASH_AFTER_START = { ranMs: 2_000, started: true };
const START_FAILURE = { ranMs: 300, started: false };

test('deaths in a row wait 0.5 s, doubling up to 10 s; a long run starts the streak again', () => {
  const backoff = new RestartBackoff();
  const delays = Array.from({ length: 8 }, () => {
    const decision = backoff.afterDeath(CRASH_AFTER_START);
    assert.ok(decision.restart, 'a node that had started is always restarted');
    return decision.delayMs;
  });
  assert.deepEqual(delays, [500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000, 10_000]);
  const afterLongRun = backoff.afterDeath({ ranMs: DEFAULT_RESTART_POLICY.stableRunMs, started: true });
  assert.deepEqual(afterLongRun, { restart: true, delayMs: 500, attempt: 1 });
});

test('five start-up failures in a row: given up; a start in between resets the count', () => {
  const backoff = new RestartBackoff();
  for (let failure = 1; failure <= 4; failure++) assert.equal(backoff.afterDeath(START_FAILURE).restart, true);
  assert.equal(backoff.afterDeath(CRASH_AFTER_START).restart, true, 'it started this time: the count restarts');
  for (let failure = 1; failure <= 4; failure++) assert.equal(backoff.afterDeath(START_FAILURE).restart, true);
  assert.deepEqual(backoff.afterDeath(START_FAILURE), { restart: false, startFailures: 5 });
});
