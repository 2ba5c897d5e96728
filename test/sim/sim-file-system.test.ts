// The simulated disk's failed writes: whole pages land, in any subset, as the store's torn-tail rule
// (segment.ts) and LazyFileSystem's page-wise write-back assume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { encodeRecord } from '../../src/io/record-codec.js';
import { scanSegment } from '../../src/io/segment.js';
import { pageSpans } from '../../src/testing/sim/sim-file-system.js';

test('a write is cut into the parts of the pages it touches', () => {
  assert.deepEqual(pageSpans(100, 0), []);
  assert.deepEqual(pageSpans(8180, 12), [[8180, 8192]]);
  assert.deepEqual(pageSpans(8180, 1133), [[8180, 8192], [8192, 9313]]);
  assert.deepEqual(pageSpans(4096, 2 * 4096), [[4096, 8192], [8192, 12288]]);
});

/** Records 0-4, one write each, then write 5: eleven small frames from mid-page across a boundary. */
function logWithFailedWrite(): { data: Buffer; failed: Buffer; start: number; end: number } {
  const ballot = { proposalId: 1, nodeId: 1 };
  const record = (instanceId: number, bytes: number, fill: number): AcceptorRecord => ({
    instanceId, promised: ballot, accepted: ballot, value: Buffer.alloc(bytes, fill), checksum: 0,
  });
  const data = Buffer.alloc(64 * 1024);
  let start = 0;
  for (let instanceId = 0; instanceId < 5; instanceId++) {
    start = encodeRecord(data, start, 0, 0, { write: instanceId, start }, record(instanceId, 1530, 1));
  }
  const failed = Buffer.alloc(64 * 1024);
  let end = start;
  for (let instanceId = 5; instanceId < 16; instanceId++) {
    end = encodeRecord(failed, end, 0, 0, { write: 5, start }, record(instanceId, 60, 2));
  }
  return { data, failed, start, end };
}

test('a failed write, then a failed attempt to zero it: whatever pages of each land, the log opens', () => {
  // Simulator seed 64: a write across a page boundary failed, and the store's resume zeroed it;
  // that failed too. Every subset of the write's pages, then every subset of the zeros' pages.
  const { data, failed, start, end } = logWithFailedWrite();
  const spans = pageSpans(start, end - start);
  assert.equal(spans.length, 2, 'the failed write crosses a page boundary');
  for (let written = 0; written < 1 << spans.length; written++) {
    for (let zeroed = 0; zeroed < 1 << spans.length; zeroed++) {
      const disk = Buffer.from(data);
      spans.forEach(([from, to], index) => { if ((written >> index) & 1) failed.copy(disk, from, from, to); });
      spans.forEach(([from, to], index) => { if ((zeroed >> index) & 1) disk.fill(0, from, to); });
      const scan = scanSegment(disk, -1);
      assert.notEqual(scan.tail?.kind, 'corrupt', `pages written ${written}, zeroed ${zeroed}: ${scan.tail?.detail}`);
      assert.deepEqual(scan.records.map((stored) => stored.record.instanceId).slice(0, 5), [0, 1, 2, 3, 4]);
    }
  }

  // Half of each write's bytes instead (the earlier model) zeroed the start of the first frame and
  // kept the next frames of the same write: damage no page-wise device leaves, taken for corruption.
  const torn = Buffer.from(data);
  failed.copy(torn, start, start, start + Math.floor((end - start) / 2));
  const firstPageEnd = spans[0]![1];
  torn.fill(0, start, start + Math.floor((firstPageEnd - start) / 2));
  assert.equal(scanSegment(torn, -1).tail?.kind, 'corrupt');
});
