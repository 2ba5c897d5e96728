import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRecord, frameBytes } from '../../src/io/record-codec.js';
import { scanSegment } from '../../src/io/segment.js';
import type { AcceptorRecord } from '../../src/core/ready.js';

const ballot = { proposalId: 1, nodeId: 1 };
const record = (instanceId: number): AcceptorRecord => ({
  instanceId, promised: ballot, accepted: ballot, value: Buffer.alloc(1500, instanceId + 1), checksum: 0,
});

/** A 64 KiB zero-filled segment holding instances 0.. with their write numbers, frames back to back. */
function segment(writes: readonly number[]): { data: Buffer; offsets: number[] } {
  const data = Buffer.alloc(64 * 1024);
  const offsets: number[] = [];
  const starts = new Map<number, number>();
  let offset = 0;
  writes.forEach((write, instanceId) => {
    offsets.push(offset);
    if (!starts.has(write)) starts.set(write, offset);
    offset = encodeRecord(data, offset, 0, 0, { write, start: starts.get(write) as number }, record(instanceId));
  });
  return { data, offsets };
}

function zeroPage(data: Buffer, page: number): void {
  data.fill(0, page * 4096, (page + 1) * 4096);
}

test('the newest write with a lost page but later pages on disk is cut as a torn tail', () => {
  // Writes 0..3 are one record each; write 4 is the last six records, from offset 4 frames in.
  const { data, offsets } = segment([0, 1, 2, 3, 4, 4, 4, 4, 4, 4]);
  const lost = Math.ceil((offsets[4] as number) / 4096);
  zeroPage(data, lost);
  const scan = scanSegment(data, -1);
  assert.equal(scan.tail?.kind, 'torn');
  assert.ok(scan.records.length >= 4 && scan.records.every((stored) => stored.record.instanceId < 4 ||
    stored.write === 4), 'what precedes the lost page stays');
  assert.equal(scan.highestWrite, 4);
});

test('a lost page inside an earlier, completed write is corruption even if only the next write follows', () => {
  // Write 4 spans four frames and completed (write 5 follows it); a page in its middle is lost.
  const { data, offsets } = segment([0, 1, 2, 3, 4, 4, 4, 4, 5, 5]);
  zeroPage(data, Math.ceil((offsets[5] as number) / 4096));
  const scan = scanSegment(data, -1);
  assert.equal(scan.tail?.kind, 'corrupt', 'write 5 began after the damage, not where the data ends');
});

test('the same gap followed by frames of two writes is corruption', () => {
  const { data, offsets } = segment([0, 1, 2, 3, 4, 4, 4, 5, 5, 5]);
  zeroPage(data, Math.ceil((offsets[4] as number) / 4096));
  assert.equal(scanSegment(data, -1).tail?.kind, 'corrupt');
});

test('a damaged frame with no lost page before valid frames of the same write is corruption', () => {
  const { data, offsets } = segment([0, 1, 2, 2, 2, 2]);
  const at = (offsets[3] as number) + 100;
  data[at] = (data[at] as number) ^ 0x10;
  const scan = scanSegment(data, -1);
  assert.equal(scan.tail?.kind, 'corrupt');
  assert.equal(scan.dataEnd, offsets[3]);
  assert.match(scan.tail?.detail ?? '', /valid records follow it, of writes 2/);
});

test('frames whose write number goes backwards end the data, and are corruption unless they are the newest', () => {
  const { data } = segment([3, 4, 1]);
  const scan = scanSegment(data, -1);
  assert.equal(scan.records.length, 2);
  assert.equal(scan.tail?.kind, 'corrupt');
  assert.ok(frameBytes(record(0)) > 1500);
});

test('damage with nothing valid after it is a torn tail; only zeros after the data is a clean end', () => {
  const { data, offsets } = segment([0, 1, 2]);
  assert.equal(scanSegment(data, -1).tail, null);
  data.fill(7, (offsets[2] as number) + 40, (offsets[2] as number) + 60);
  const scan = scanSegment(data, -1);
  assert.equal(scan.tail?.kind, 'torn');
  assert.equal(scan.dataEnd, offsets[2]);
});
