// The simulated disk's failed writes: what lands is whole pages, as the store's torn-tail rule
// (segment.ts) and LazyFileSystem's write-back assume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { encodeRecord } from '../../src/io/record-codec.js';
import { scanSegment } from '../../src/io/segment.js';
import { landedOfFailedWrite } from '../../src/testing/sim/sim-file-system.js';

test('a failed write lands the first half of the pages it touches, at least one, never part of a page', () => {
  assert.equal(landedOfFailedWrite(100, 0), 0);
  assert.equal(landedOfFailedWrite(8180, 12), 12, 'inside one page: that page');
  assert.equal(landedOfFailedWrite(8180, 1133), 12, 'across one boundary: up to it');
  assert.equal(landedOfFailedWrite(0, 4 * 4096), 2 * 4096, 'four pages: two');
  assert.equal(landedOfFailedWrite(4000, 3 * 4096), 4192, 'four pages touched from inside the first: two of them');
  assert.equal(landedOfFailedWrite(4096, 3 * 4096), 4096, 'three pages: one');
});

test('a failed write, then a failed attempt to zero it, leaves a log that opens as torn or clean, not damaged', () => {
  // Simulator seed 64: a write of several frames across a page boundary failed, and the store's
  // resume zeroed it through the page cache, which writes back page by page; that failed too.
  const ballot = { proposalId: 1, nodeId: 1 };
  const data = Buffer.alloc(64 * 1024);
  let offset = 0;
  for (let instanceId = 0; instanceId < 5; instanceId++) {
    const record: AcceptorRecord = {
      instanceId, promised: ballot, accepted: ballot, value: Buffer.alloc(1530, 1), checksum: 0,
    };
    offset = encodeRecord(data, offset, 0, 0, { write: instanceId, start: offset }, record);
  }
  const start = offset;
  const failed = Buffer.alloc(64 * 1024);
  let end = start;
  for (let instanceId = 5; instanceId < 16; instanceId++) {
    const record: AcceptorRecord = {
      instanceId, promised: ballot, accepted: ballot, value: Buffer.alloc(60, 2), checksum: 0,
    };
    end = encodeRecord(failed, end, 0, 0, { write: 5, start }, record);
  }
  assert.ok(Math.floor(start / 4096) < Math.floor((end - 1) / 4096), 'the failed write crosses a page boundary');
  failed.copy(data, start, start, start + landedOfFailedWrite(start, end - start));
  const pageEnd = Math.min(end, (Math.floor(start / 4096) + 1) * 4096);
  data.fill(0, start, start + landedOfFailedWrite(start, pageEnd - start));
  const scan = scanSegment(data, -1);
  assert.notEqual(scan.tail?.kind, 'corrupt', scan.tail?.detail);
  assert.deepEqual(scan.records.map((stored) => stored.record.instanceId), [0, 1, 2, 3, 4]);

  // Half of each write's bytes instead (the earlier model) zeroed the start of the first frame and
  // kept the next frames of the same write: damage no page-wise device leaves, taken for corruption.
  const torn = Buffer.alloc(64 * 1024);
  data.copy(torn, 0, 0, start);
  failed.copy(torn, start, start, start + Math.floor((end - start) / 2));
  torn.fill(0, start, start + Math.floor((pageEnd - start) / 2));
  assert.equal(scanSegment(torn, -1).tail?.kind, 'corrupt');
});
