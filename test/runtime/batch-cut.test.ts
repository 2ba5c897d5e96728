// BatchCut decides when a group driver may cut its next batch (see src/runtime/batch-cut.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchCut } from '../../src/runtime/batch-cut.js';

function rig(): { cut: BatchCut; cuts: () => number; deferred: (() => void)[] } {
  let cuts = 0;
  const deferred: (() => void)[] = [];
  const cut = new BatchCut(() => { cuts++; }, (run) => deferred.push(run));
  return { cut, cuts: () => cuts, deferred };
}

test('closed from the execution of our batch until the answered callers have proposed again', () => {
  const { cut, cuts, deferred } = rig();
  assert.equal(cut.open, true, 'nothing executed: a proposal to an idle group goes at once');
  cut.ownBatchExecuted();
  assert.equal(cut.open, false);
  cut.readyHandled();
  assert.equal(cut.open, false, 'the answer comes in the next Ready');
  cut.answering();
  cut.readyHandled();
  assert.equal(cut.open, false, 'the answered callers have not run yet');
  assert.equal(deferred.length, 1);
  deferred.shift()?.();
  assert.equal(cuts(), 1);
  assert.equal(cut.open, true);
});

test('one deferred cut however many Readies answer before it runs', () => {
  const { cut, cuts, deferred } = rig();
  cut.answering();
  cut.answering();
  assert.equal(deferred.length, 1);
  deferred.shift()?.();
  assert.equal(cuts(), 1);
});

test('an answer that never comes does not keep the queue waiting once the driver is idle', () => {
  const { cut, cuts, deferred } = rig();
  cut.ownBatchExecuted();
  cut.readyHandled();
  cut.idle();
  assert.equal(deferred.length, 1);
  deferred.shift()?.();
  assert.equal(cuts(), 1);
  assert.equal(cut.open, true);
});

test('idle with no answer due schedules nothing', () => {
  const { cut, deferred } = rig();
  cut.idle();
  assert.equal(deferred.length, 0);
  assert.equal(cut.open, true);
});

test('a value proposed to an idle group is cut at the end of the turn, with those proposed beside it', () => {
  const { cut, cuts, deferred } = rig();
  cut.proposed();
  cut.proposed();
  assert.equal(cut.open, false);
  assert.equal(deferred.length, 1, 'one cut for the whole turn');
  deferred.shift()?.();
  assert.equal(cuts(), 1);
});

test('a value proposed while an answer is due waits for that answer', () => {
  const { cut, deferred } = rig();
  cut.ownBatchExecuted();
  cut.proposed();
  assert.equal(deferred.length, 0);
  cut.readyHandled();
  cut.answering();
  assert.equal(deferred.length, 1);
});
