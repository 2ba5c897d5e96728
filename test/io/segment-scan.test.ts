import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeRecord, frameBytes } from '../../src/io/record-codec.js';
import { scanSegment } from '../../src/io/segment.js';
import type { AcceptorRecord } from '../../src/core/ready.js';

const ballot = { proposalId: 1, nodeId: 1 };
const record = (instanceId: number, valueBytes = 1500): AcceptorRecord => ({
  instanceId, promised: ballot, accepted: ballot, value: Buffer.alloc(valueBytes, instanceId + 1), checksum: 0,
});

/**
 * A 64 KiB zero-filled segment holding instances 0.. with their write numbers, frames back to back;
 * `valueBytes` is every value's size, or each instance's.
 */
function segment(writes: readonly number[], valueBytes: number | ((instanceId: number) => number) = 1500):
  { data: Buffer; offsets: number[] } {
  const data = Buffer.alloc(64 * 1024);
  const offsets: number[] = [];
  const starts = new Map<number, number>();
  let offset = 0;
  writes.forEach((write, instanceId) => {
    offsets.push(offset);
    if (!starts.has(write)) starts.set(write, offset);
    offset = encodeRecord(data, offset, 0, 0, { write, start: starts.get(write) as number },
      record(instanceId, typeof valueBytes === 'number' ? valueBytes : valueBytes(instanceId)));
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

const SECTOR = 512;

/** What a sector-atomic device keeps of a write [from, to) whose sectors in `lost` never landed. */
function loseSectors(data: Buffer, from: number, to: number, lost: readonly number[]): Buffer {
  const torn = Buffer.from(data);
  for (const sector of lost) {
    torn.fill(0, Math.max(sector * SECTOR, from), Math.min((sector + 1) * SECTOR, to));
  }
  return torn;
}

test('a write whose first sector never landed, the rest on disk, is a torn tail (512-byte sectors)', () => {
  // Write 4 (six frames of 1,565 bytes) starts mid-sector; only the sector holding its start is lost.
  const writes = [0, 1, 2, 3, 4, 4, 4, 4, 4, 4];
  const { data, offsets } = segment(writes);
  const from = offsets[4] as number;
  assert.notEqual(from % SECTOR, 0);
  const scan = scanSegment(loseSectors(data, from, data.length, [Math.floor(from / SECTOR)]), -1);
  assert.equal(scan.tail?.kind, 'torn', scan.tail?.detail);
  assert.equal(scan.dataEnd, from);
  assert.deepEqual(scan.records.map((stored) => stored.record.instanceId), [0, 1, 2, 3]);
  assert.equal(scan.highestWrite, 4, 'the residue\'s write number is not reused');
});

test('the same on a sector boundary: a whole lost first sector is a torn tail', () => {
  // 447-byte values make 512-byte frames, so write 2 starts exactly on a sector.
  const { data, offsets } = segment([0, 1, 2, 2, 2, 2], 447);
  const from = offsets[2] as number;
  assert.equal(from % SECTOR, 0);
  const scan = scanSegment(loseSectors(data, from, data.length, [from / SECTOR]), -1);
  assert.equal(scan.tail?.kind, 'torn', scan.tail?.detail);
  assert.equal(scan.dataEnd, from);
});

test('a zeroed frame header with its sector\'s other bytes on disk is corruption, not a lost sector', () => {
  const { data, offsets } = segment([0, 1, 2, 3, 4, 4, 4, 4, 4, 4]);
  const from = offsets[4] as number;
  data.fill(0, from, from + 8);
  const scan = scanSegment(data, -1);
  assert.equal(scan.tail?.kind, 'corrupt');
  assert.equal(scan.dataEnd, from);
});

test('a bit flipped in the first frame of a write that starts in a sector\'s last bytes is corruption', () => {
  // Write 0 is a 511-byte frame, so write 1 starts 1 byte before a sector's end; its frames have
  // 256-byte bodies, so the low byte of each length, the only byte of it in that sector, is zero.
  const { data, offsets } = segment([0, 1, 1, 1, 1], (instanceId) => (instanceId === 0 ? 446 : 199));
  const from = offsets[1] as number;
  assert.equal(from, 511);
  assert.equal(data[from], 0);
  const flipped = Buffer.from(data);
  flipped[from + 100] = (flipped[from + 100] as number) ^ 0x04;
  const scan = scanSegment(flipped, -1);
  assert.equal(scan.tail?.kind, 'corrupt', 'an acknowledged write with one flipped bit is not cut');
  assert.equal(scan.dataEnd, from);
  // Both sectors its header lies in lost (the rest landed): that is a tear.
  const torn = scanSegment(loseSectors(data, from, data.length, [0, 1]), -1);
  assert.equal(torn.tail?.kind, 'torn', torn.tail?.detail);
  assert.equal(torn.dataEnd, from);
});

/**
 * Every subset of the sectors of the last write (instances from `firstOfWrite`) lost: what is cut is
 * only that write, and losing every sector its first frame's header (and kind byte) lies in is a
 * tear. Returns how many subsets stop start-up.
 */
function everySectorSubset(writes: readonly number[], valueBytes: (instanceId: number) => number,
  firstOfWrite: number): number {
  const { data, offsets } = segment(writes, valueBytes);
  const from = offsets[firstOfWrite] as number;
  let to = from;
  for (let instanceId = firstOfWrite; instanceId < writes.length; instanceId++) to += valueBytes(instanceId) + 65;
  const sectors: number[] = [];
  for (let sector = Math.floor(from / SECTOR); sector * SECTOR < to; sector++) sectors.push(sector);
  const headerSectors = sectors.filter((sector) => sector * SECTOR <= from + 8);
  let stopsStartUp = 0;
  for (let mask = 0; mask < 1 << sectors.length; mask++) {
    const lost = sectors.filter((_, index) => (mask & (1 << index)) !== 0);
    const scan = scanSegment(loseSectors(data, from, to, lost), -1);
    const ids = scan.records.map((stored) => stored.record.instanceId);
    const what = `write at ${from}, sectors ${JSON.stringify(lost)} lost`;
    assert.deepEqual(ids, ids.map((_, index) => index), `${what}: the records kept are a prefix`);
    assert.ok(ids.length >= firstOfWrite, `${what}: the acknowledged writes stay`);
    if (lost.length === 0) {
      assert.equal(scan.tail, null, what);
      assert.equal(ids.length, writes.length);
      continue;
    }
    if (headerSectors.every((sector) => lost.includes(sector))) {
      // Torn, or a clean end when no sector of the write landed.
      assert.notEqual(scan.tail?.kind, 'corrupt', `${what}: ${scan.tail?.detail ?? ''}`);
      assert.equal(scan.dataEnd, from, what);
      continue;
    }
    if (scan.tail?.kind === 'corrupt') {
      // Left as damage on purpose (see hasLostPage): the header landed, a later sector did not,
      // and intact frames of the write follow the hole.
      const landedAfterHole = lost.some((hole) => sectors.some((sector) => sector > hole && !lost.includes(sector)));
      assert.ok(landedAfterHole, `${what}: corruption with nothing landed after the hole`);
      stopsStartUp++;
    }
  }
  return stopsStartUp;
}

test('every subset of a write\'s sectors: what is cut is only that write, and a lost first header is a tear', () => {
  // Writes 0-2 are one 265-byte frame each, acknowledged; write 3 is twelve frames over seven sectors.
  const midSector = everySectorSubset([0, 1, 2, ...Array.from({ length: 12 }, () => 3)], () => 200, 3);
  // Write 1 starts 1 byte before a sector's end (its header spans two sectors): 256-byte bodies.
  const sectorEnd = everySectorSubset([0, 1, 1, 1, 1, 1, 1, 1, 1], (id) => (id === 0 ? 446 : 199), 1);
  // Those whose hole has intact frames after it, with the header on disk, still stop start-up.
  assert.ok(midSector > 0 && midSector < 63, `${midSector} subsets stop start-up`);
  assert.ok(sectorEnd > 0, `${sectorEnd} subsets stop start-up`);
});
