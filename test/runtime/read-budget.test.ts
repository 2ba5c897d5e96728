import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { answeredWithin, readInChunks } from '../../src/runtime/read-budget.js';

const BALLOT = { proposalId: 1, nodeId: 1 };

function record(instanceId: number, bytes: number): AcceptorRecord {
  return { instanceId, promised: BALLOT, accepted: BALLOT, value: new Uint8Array(bytes), checksum: 0 };
}

describe('read budget', () => {
  test('answeredWithin: in order until the values reach the limit, at least one', () => {
    const records = [record(0, 100), record(1, 100), record(2, 100), record(3, 100)];
    assert.equal(answeredWithin(records, 250), 3, 'the third reaches the limit and is the last');
    assert.equal(answeredWithin(records, 200), 2);
    assert.equal(answeredWithin(records, 1), 1, 'at least one, however small the limit');
    assert.equal(answeredWithin(records, Infinity), 4);
    assert.equal(answeredWithin([undefined, record(1, 500)], 100), 2, 'a record not found weighs nothing');
    assert.equal(answeredWithin([], 100), 1, 'a store that answered nothing: the first read counts as not found');
    assert.equal(answeredWithin(records, 0), 0, 'a spent budget hands over nothing');
  });

  test('readInChunks: a few at a time, in order, stopping after the chunk that reaches the limit', async () => {
    const asked: number[] = [];
    const get = async (instanceId: number): Promise<AcceptorRecord | undefined> => {
      asked.push(instanceId);
      return instanceId === 5 ? undefined : record(instanceId, 1000);
    };
    const ids = Array.from({ length: 100 }, (_, index) => index);
    const records = await readInChunks(get, ids, 20_000);
    assert.equal(records.length, 32, 'two chunks of 16: the second reached 20,000 bytes');
    assert.deepEqual(asked, ids.slice(0, 32));
    assert.equal(records[5], undefined);
    assert.equal(records[31]?.instanceId, 31);
    asked.length = 0;
    assert.equal((await readInChunks(get, ids, 1)).length, 16, 'one chunk at least');
    assert.equal((await readInChunks(get, ids, Infinity)).length, 100);
  });
});
