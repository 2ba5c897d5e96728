import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NULL_BALLOT } from '../../src/core/ballot.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import type { LogStore } from '../../src/runtime/interfaces.js';
import { fromUtf8, utf8 } from '../../src/util/bytes.js';

function record(instanceId: number, value: string, proposalId = 1): AcceptorRecord {
  const b = { proposalId, nodeId: 1 };
  return { instanceId, promised: b, accepted: b, value: utf8(value), checksum: instanceId + 100 };
}

test('an empty group has no records, no max instance and min chosen 0', async () => {
  const store: LogStore = new MemoryLogStore();
  assert.equal(await store.maxInstanceId(0), undefined);
  assert.equal(await store.get(0, 0), undefined);
  assert.equal(await store.minChosenInstanceId(0), 0);
  assert.equal(await store.systemVariables(0), undefined);
  assert.equal(await store.masterVariables(0), undefined);
});

test('put and get round trip; the newest record of an instance replaces older ones', async () => {
  const store: LogStore = new MemoryLogStore();
  await store.put(0, [record(0, 'a'), record(2, 'c')], { sync: true });
  await store.put(0, [record(1, 'b'), { ...record(0, 'a2', 2), accepted: NULL_BALLOT }], { sync: false });
  assert.equal(await store.maxInstanceId(0), 2);
  assert.deepEqual(await store.get(0, 2), record(2, 'c'));
  const zero = await store.get(0, 0);
  assert.equal(fromUtf8(zero?.value ?? new Uint8Array()), 'a2');
  assert.deepEqual(zero?.accepted, NULL_BALLOT);
  assert.deepEqual(zero?.promised, { proposalId: 2, nodeId: 1 });
});

test('stored values are copies: neither the caller\'s buffer nor a returned one can change the log', async () => {
  const store: LogStore = new MemoryLogStore();
  const written = record(0, 'abc');
  await store.put(0, [written], { sync: true });
  written.value[0] = 0x7a;
  const first = await store.get(0, 0);
  assert.equal(fromUtf8(first?.value ?? new Uint8Array()), 'abc');
  first?.value.fill(0);
  assert.equal(fromUtf8((await store.get(0, 0))?.value ?? new Uint8Array()), 'abc');
});

test('groups are independent', async () => {
  const store: LogStore = new MemoryLogStore();
  await store.put(1, [record(5, 'x')], { sync: true });
  assert.equal(await store.maxInstanceId(1), 5);
  assert.equal(await store.maxInstanceId(2), undefined);
  assert.equal(await store.get(2, 5), undefined);
});

test('deleteBelow removes older records and raises (never lowers) the min chosen instance', async () => {
  const store: LogStore = new MemoryLogStore();
  await store.put(0, [0, 1, 2, 3].map((id) => record(id, `v${id}`)), { sync: true });
  await store.deleteBelow(0, 2);
  assert.equal(await store.get(0, 1), undefined);
  assert.ok(await store.get(0, 2));
  assert.equal(await store.minChosenInstanceId(0), 2);
  await store.deleteBelow(0, 1);
  assert.equal(await store.minChosenInstanceId(0), 2);
  assert.equal(await store.maxInstanceId(0), 3);
  await store.setMinChosenInstanceId(0, 9);
  assert.equal(await store.minChosenInstanceId(0), 9);
});

test('system and master variables round trip as copies and survive clear', async () => {
  const store: LogStore = new MemoryLogStore();
  const system = utf8('sys');
  await store.setSystemVariables(0, system);
  await store.setMasterVariables(0, utf8('master'));
  system[0] = 0;
  assert.equal(fromUtf8((await store.systemVariables(0)) ?? new Uint8Array()), 'sys');
  await store.put(0, [record(0, 'a')], { sync: true });
  await store.setMinChosenInstanceId(0, 4);
  await store.clear(0);
  assert.equal(await store.maxInstanceId(0), undefined);
  assert.equal(await store.get(0, 0), undefined);
  assert.equal(await store.minChosenInstanceId(0), 0);
  assert.equal(fromUtf8((await store.systemVariables(0)) ?? new Uint8Array()), 'sys');
  assert.equal(fromUtf8((await store.masterVariables(0)) ?? new Uint8Array()), 'master');
});

test('a closed store refuses every call', async () => {
  const store: LogStore = new MemoryLogStore();
  await store.close();
  await assert.rejects(store.get(0, 0), /closed/);
  await assert.rejects(store.put(0, [record(0, 'a')], { sync: true }), /closed/);
});
