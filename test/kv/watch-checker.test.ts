// The watch checker must fail on each way a watch can go wrong (a checker that cannot fail proves
// nothing): a gap, a duplicate, a reorder, a wrong value, a missing tail, a key outside the prefix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkWatcher, type SeenChange, type WrittenValue } from '../support/watch-checker.js';

const writes: WrittenValue[] = [
  { key: 'p/a', value: 'a1', version: 1 },
  { key: 'p/b', value: 'b1', version: 1 },
  { key: 'p/a', value: 'a2', version: 2 },
  { key: 'p/a', value: 'a3', version: undefined }, // unknown outcome: may show as version 3
  { key: 'q/c', value: 'c1', version: 1 },
];
const good: SeenChange[] = [
  { key: 'p/a', version: 1, value: 'a1' }, { key: 'p/b', version: 1, value: 'b1' }, { key: 'p/a', version: 2, value: 'a2' },
];

test('a complete, ordered watch passes (with or without a write of unknown outcome)', () => {
  assert.deepEqual(checkWatcher('p/', writes, good), []);
  assert.deepEqual(checkWatcher('p/', writes, [...good, { key: 'p/a', version: 3, value: 'a3' }]), []);
});

test('each fault is caught', () => {
  const cases: [string, SeenChange[], RegExp][] = [
    ['gap', [good[0], good[1]] as SeenChange[], /p\/a: saw 1 versions; version 2/],
    ['gap in the middle', [good[1], { key: 'p/a', version: 2, value: 'a2' }] as SeenChange[], /expected 1 \(a gap\)/],
    ['duplicate', [...good, good[2]] as SeenChange[], /duplicate or a step back/],
    ['reorder', [good[2], good[1], good[0]] as SeenChange[], /version 2, expected 1/],
    ['wrong value', [good[0], good[1], { key: 'p/a', version: 2, value: 'zz' }] as SeenChange[], /acknowledged a2/],
    ['value never written', [...good, { key: 'p/a', version: 3, value: 'x' }], /never written/],
    ['outside the prefix', [...good, { key: 'q/c', version: 1, value: 'c1' }], /outside the prefix/],
  ];
  for (const [name, seen, problem] of cases) {
    const problems = checkWatcher('p/', writes, seen);
    assert.ok(problems.some((text) => problem.test(text)), `${name}: ${JSON.stringify(problems)}`);
  }
});
