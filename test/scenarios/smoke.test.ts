import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreHarness } from '../../src/testing/core-harness.js';

test('three nodes choose and execute one proposal', () => {
  const harness = new CoreHarness({ nodes: 3 });
  const token = harness.propose(1, 'hello');
  harness.stabilize();
  for (const id of [1, 2, 3]) assert.deepEqual(harness.executedValues(id), ['hello'], `node ${id}`);
  const result = harness.resultFor(1, token);
  assert.equal(result?.outcome.kind, 'chosen');
  const token2 = harness.propose(1, 'world');
  harness.stabilize();
  assert.equal(harness.resultFor(1, token2)?.outcome.kind, 'chosen');
  // Skip-prepare: the second instance needed no prepare.
  assert.ok(!harness.trace.some((line) => line.includes('deliver prepare#1')), harness.trace.join('\n'));
  assert.deepEqual(harness.executedValues(3), ['hello', 'world']);
});
