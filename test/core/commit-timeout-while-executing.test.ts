import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TIMING } from '../../src/core/config.js';
import { GroupCore } from '../../src/core/group-core.js';
import { NULL_BALLOT } from '../../src/core/ballot.js';
import { EMPTY_BYTES, utf8 } from '../../src/util/bytes.js';
import { SeededRandom } from '../../src/util/random.js';
import { fullCrc32 } from '../../src/testing/crc32.js';

// Found by simulator seed 5298: the commit timeout of a proposal whose value was already chosen
// (and only waited for its execution) stayed the node's next timer while being ignored, so the
// driver woke the node at the same instant forever.
test('a chosen proposal waiting for execution past its timeout does not keep a due timer', () => {
  const core = new GroupCore({
    groupIndex: 0, nodeId: 1, members: [1], random: new SeededRandom(1), incarnation: { high: 0, low: 1 },
    checksum: fullCrc32, timing: DEFAULT_TIMING,
  }, {
    nowInstanceId: 0, lastChecksum: 0, minChosenInstanceId: 0,
    acceptor: { promised: NULL_BALLOT, accepted: NULL_BALLOT, value: EMPTY_BYTES, checksum: 0 },
  }, 0);
  assert.equal(core.propose(utf8('v'), 7, 100), 'accepted');
  // Single node: drive prepare -> promise -> accept -> accepted to the point of execution.
  for (let turn = 0; turn < 10; turn++) {
    if (!core.hasReady()) break;
    const ready = core.ready();
    core.advance();
    for (const outbound of ready.messages) if (outbound.to === 1) core.step(outbound.message);
    if (ready.execute !== null) break;
  }
  assert.equal(core.status().executing, true, 'the value is chosen and handed out for execution');
  core.tick(500);
  const next = core.nextTimerAt();
  assert.ok(next !== undefined && next > 500, `next timer ${next} must lie in the future`);
  core.onExecuted(0, { ok: true, result: 'done' });
  const results = core.ready().results;
  assert.deepEqual(results.map((result) => result.outcome.kind), ['chosen']);
});
