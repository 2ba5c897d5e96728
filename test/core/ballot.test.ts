import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ballotsEqual, compareBallots, formatBallot, isNullBallot, maxBallot, NULL_BALLOT,
} from '../../src/core/ballot.js';
import { ballot } from './fixtures.js';

test('ballots compare by proposal id first, then by node id', () => {
  assert.equal(compareBallots(ballot(1, 9), ballot(2, 1)), -1);
  assert.equal(compareBallots(ballot(2, 1), ballot(1, 9)), 1);
  assert.equal(compareBallots(ballot(3, 1), ballot(3, 2)), -1);
  assert.equal(compareBallots(ballot(3, 2), ballot(3, 1)), 1);
  assert.equal(compareBallots(ballot(3, 2), ballot(3, 2)), 0);
  assert.equal(compareBallots(NULL_BALLOT, ballot(1, 1)), -1);
  assert.equal(compareBallots(ballot(0, 5), NULL_BALLOT), 1, 'node id still orders ballots with proposal id 0');
});

test('ballot equality, null ballots, max and formatting', () => {
  assert.equal(ballotsEqual(ballot(4, 2), ballot(4, 2)), true);
  assert.equal(ballotsEqual(ballot(4, 2), ballot(4, 3)), false);
  assert.equal(ballotsEqual(ballot(4, 2), ballot(5, 2)), false);
  assert.equal(isNullBallot(NULL_BALLOT), true);
  assert.equal(isNullBallot(ballot(0, 3)), true, 'proposal id 0 means nothing promised or accepted');
  assert.equal(isNullBallot(ballot(1, 0)), false);
  assert.deepEqual(maxBallot(ballot(2, 1), ballot(1, 9)), ballot(2, 1));
  assert.deepEqual(maxBallot(ballot(1, 9), ballot(2, 1)), ballot(2, 1));
  assert.deepEqual(maxBallot(ballot(2, 1), ballot(2, 3)), ballot(2, 3));
  assert.equal(formatBallot(ballot(12, 3)), '12.3');
  assert.ok(Object.isFrozen(NULL_BALLOT));
});
