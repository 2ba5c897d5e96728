/**
 * How a driver answers a Ready's log reads within its byte limit (Ready.readBytesLimit, what a
 * teacher's budget has left): in order, until the values read reach the limit, at least one unless
 * the limit is 0. The reads not answered go back to the core first (GroupCore.onLogReadsDeferred)
 * and the teacher asks for them again. GroupDriver and the test harness share the rule.
 */
import type { AcceptorRecord } from '../core/ready.js';

/** Records read per step from a store that cannot read several at once up to a byte limit. */
const CHUNK = 16;

/**
 * How many of `records`, from the first, until their values reach `maxBytes`: none when the limit is
 * 0 (the budget is spent), else at least one, even from a store that answered none (that read then
 * counts as a record not found).
 */
export function answeredWithin(records: readonly (AcceptorRecord | undefined)[], maxBytes: number): number {
  if (maxBytes <= 0) return 0;
  if (records.length === 0) return 1;
  let bytes = 0;
  for (let count = 0; count < records.length; count++) {
    if (count > 0 && bytes >= maxBytes) return count;
    bytes += records[count]?.value.length ?? 0;
  }
  return records.length;
}

/**
 * Read `instanceIds` in order with `get`, a few at a time, stopping once the values reach
 * `maxBytes`: a store without a bounded getMany then reads at most one chunk past the limit, not
 * the whole request (256 reads that may each be a large value).
 */
export async function readInChunks(
  get: (instanceId: number) => Promise<AcceptorRecord | undefined>, instanceIds: readonly number[], maxBytes: number,
): Promise<(AcceptorRecord | undefined)[]> {
  const records: (AcceptorRecord | undefined)[] = [];
  let bytes = 0;
  for (let start = 0; start < instanceIds.length && (start === 0 || bytes < maxBytes); start += CHUNK) {
    const chunk = await Promise.all(instanceIds.slice(start, start + CHUNK).map(get));
    for (const record of chunk) bytes += record?.value.length ?? 0;
    records.push(...chunk);
  }
  return records;
}
