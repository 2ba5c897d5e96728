import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupOfKey } from '../../src/kv/key-hash.js';
import { encodeKvCommand, type Fence, type KvCommand } from '../../src/kv/kv-command.js';
import { KV_STATE_MACHINE_ID, KvStateMachine, type KvOutcome } from '../../src/kv/kv-state-machine.js';

const A: Fence = { nodeId: 1, masterVersion: 10 };
const B: Fence = { nodeId: 2, masterVersion: 20 };

/** A machine with one group (every key belongs to it) and a helper that executes at increasing instances. */
type Run = (command: KvCommand | Uint8Array, group?: number) => KvOutcome;
function machine(groups = 1): { sm: KvStateMachine; run: Run } {
  const sm = new KvStateMachine({ groups });
  const next = new Array<number>(groups).fill(0);
  const run = (command: KvCommand | Uint8Array, group = 0): KvOutcome => {
    const value = command instanceof Uint8Array ? command : encodeKvCommand(command);
    const instanceId = next[group] ?? 0;
    next[group] = instanceId + 1;
    return sm.execute({ groupIndex: group, instanceId, value, context: undefined });
  };
  return { sm, run };
}

const fence = (f: Fence, httpAddress = `node${f.nodeId}:8080`): KvCommand => ({ kind: 'fence', fence: f, httpAddress });
const put = (key: string, text: string, expectedVersion?: number, f: Fence = A): KvCommand =>
  ({ kind: 'put', key, value: new TextEncoder().encode(text), expectedVersion, fence: f });
const del = (key: string, expectedVersion?: number, f: Fence = A): KvCommand =>
  ({ kind: 'delete', key, expectedVersion, fence: f });
const text = (value: Uint8Array | undefined): string | undefined =>
  value === undefined ? undefined : new TextDecoder().decode(value);

test('id and initial state', () => {
  const { sm } = machine(2);
  assert.equal(sm.id, KV_STATE_MACHINE_ID);
  assert.deepEqual(sm.read(1, 'k'), { value: undefined, version: 0 });
  assert.equal(sm.fence(0), undefined);
  assert.equal(sm.lastExecutedInstanceId(1), -1);
  assert.deepEqual(sm.stats(), { keys: 0, tombstones: 0, valueBytes: 0 });
  assert.throws(() => new KvStateMachine({ groups: 0 }), RangeError);
});

test('a fence applies only above the current master version', () => {
  const { sm, run } = machine();
  assert.deepEqual(run(fence(A)), { ok: true, version: 10 });
  assert.deepEqual(sm.fence(0), { ...A, httpAddress: 'node1:8080' });
  assert.deepEqual(run(fence(B)), { ok: true, version: 20 });
  const current = { ...B, httpAddress: 'node2:8080' };
  assert.deepEqual(run(fence({ nodeId: 3, masterVersion: 15 })), { ok: false, code: 'FENCED', fence: current }, 'stale');
  assert.deepEqual(run(fence({ nodeId: 3, masterVersion: 20 })), { ok: false, code: 'FENCED', fence: current }, 'equal');
  assert.deepEqual(run(fence(B, 'moved:1')), { ok: false, code: 'FENCED', fence: current }, 'a repeat is stale too');
  assert.deepEqual(sm.fence(0), current);
});

test('writes need the current fence; a write under an old fence is refused after a new one', () => {
  const { sm, run } = machine();
  assert.deepEqual(run(put('k', 'v')), { ok: false, code: 'FENCED', fence: undefined }, 'no fence yet');
  run(fence(A));
  assert.deepEqual(run(put('k', 'v1')), { ok: true, version: 1 });
  assert.equal(run(put('k', 'x', undefined, { nodeId: 1, masterVersion: 11 })).ok, false, 'same node, other term');
  assert.equal(run(put('k', 'x', undefined, { nodeId: 9, masterVersion: 10 })).ok, false, 'other node, same term');
  run(fence(B));
  const fenced = { ok: false, code: 'FENCED', fence: { ...B, httpAddress: 'node2:8080' } };
  assert.deepEqual(run(put('k', 'late', undefined, A)), fenced);
  assert.deepEqual(run(del('k', undefined, A)), fenced);
  assert.equal(sm.read(0, 'k').version, 1);
  assert.deepEqual(run(put('k', 'v2', 1, B)), { ok: true, version: 2 });
  assert.equal(text(sm.read(0, 'k').value), 'v2');
});

test('versions: conditional on 0 for a new key, delete keeps the version, put after delete', () => {
  const { sm, run } = machine();
  run(fence(A));
  assert.deepEqual(run(put('k', 'v1', 1)), { ok: false, code: 'VERSION_CONFLICT', version: 0 });
  assert.deepEqual(run(put('k', 'v1', 0)), { ok: true, version: 1 });
  assert.deepEqual(run(put('k', 'v2', 1)), { ok: true, version: 2 });
  assert.deepEqual(run(del('k', 2)), { ok: true, version: 3 });
  assert.deepEqual(sm.read(0, 'k'), { value: undefined, version: 3 }, 'a tombstone keeps its version');
  assert.deepEqual(run(put('k', 'v3', 0)), { ok: false, code: 'VERSION_CONFLICT', version: 3 });
  assert.deepEqual(run(put('k', 'v3', 3)), { ok: true, version: 4 });
  assert.equal(text(sm.read(0, 'k').value), 'v3');
});

test('a delete of an absent key changes nothing and answers KEY_NOT_FOUND; its version check comes first', () => {
  const { sm, run } = machine();
  run(fence(A));
  assert.deepEqual(run(del('never')), { ok: false, code: 'KEY_NOT_FOUND', version: 0 });
  assert.deepEqual(run(del('never', 0)), { ok: false, code: 'KEY_NOT_FOUND', version: 0 });
  assert.deepEqual(run(del('never', 1)), { ok: false, code: 'VERSION_CONFLICT', version: 0 });
  assert.equal(sm.captureSnapshot(0, 3).keys.includes('never'), false, 'no tombstone for a never-written key');
  run(put('k', 'v'));
  assert.deepEqual(run(del('k')), { ok: true, version: 2 });
  assert.deepEqual(run(del('k')), { ok: false, code: 'KEY_NOT_FOUND', version: 2 }, 'deleting twice');
  assert.deepEqual(run(del('k', 2)), { ok: false, code: 'KEY_NOT_FOUND', version: 2 });
  assert.deepEqual(run(del('k', 1)), { ok: false, code: 'VERSION_CONFLICT', version: 2 });
  assert.deepEqual(sm.read(0, 'k'), { value: undefined, version: 2 });
  assert.deepEqual(sm.stats(), { keys: 0, tombstones: 1, valueBytes: 0 });
  assert.deepEqual(run(put('k', 'w', 2)), { ok: true, version: 3 }, 'the tombstone keeps counting');
});

test('replay: a delete from an old log (kind 2) still writes a tombstone for an absent key', () => {
  const legacy = (key: string, expectedVersion?: number): KvCommand =>
    ({ kind: 'delete', key, expectedVersion, fence: A, tombstoneIfAbsent: true });
  const { sm, run } = machine();
  run(fence(A));
  assert.equal(encodeKvCommand(legacy('never'))[1], 2, 'the old kind byte');
  assert.deepEqual(run(legacy('never')), { ok: true, version: 1 }, 'a never-written key gets a tombstone');
  assert.deepEqual(run(legacy('never', 1)), { ok: true, version: 2 }, 'and so does a deleted one');
  assert.deepEqual(run(legacy('never', 7)), { ok: false, code: 'VERSION_CONFLICT', version: 2 });
  assert.deepEqual(sm.read(0, 'never'), { value: undefined, version: 2 });
  // After the old entries, new deletes follow the new rule on the same state.
  assert.deepEqual(run(del('never')), { ok: false, code: 'KEY_NOT_FOUND', version: 2 });
  run(put('k', 'v'));
  assert.deepEqual(run(legacy('k')), { ok: true, version: 2 }, 'a present key: the same as a new delete');
});

test('unconditional writes always apply and bump the version', () => {
  const { sm, run } = machine();
  run(fence(A));
  assert.deepEqual(run(put('k', 'a')), { ok: true, version: 1 });
  assert.deepEqual(run(put('k', 'b')), { ok: true, version: 2 });
  assert.deepEqual(run(del('k')), { ok: true, version: 3 });
  assert.deepEqual(run(put('k', 'c')), { ok: true, version: 4 });
  assert.equal(text(sm.read(0, 'k').value), 'c');
});

test('a version conflict leaves the state unchanged', () => {
  const { sm, run } = machine();
  run(fence(A));
  run(put('k', 'v1'));
  const before = sm.read(0, 'k');
  const stats = sm.stats();
  assert.deepEqual(run(put('k', 'other', 7)), { ok: false, code: 'VERSION_CONFLICT', version: 1 });
  assert.deepEqual(run(del('k', 0)), { ok: false, code: 'VERSION_CONFLICT', version: 1 });
  assert.equal(sm.read(0, 'k'), before);
  assert.deepEqual(sm.stats(), stats);
});

test('the stored value is a copy of the command bytes', () => {
  const { sm, run } = machine();
  run(fence(A));
  const bytes = encodeKvCommand(put('k', 'abc'));
  run(bytes);
  bytes.fill(0);
  assert.equal(text(sm.read(0, 'k').value), 'abc');
});

test('replay: the same commands give the same state; a retried conditional put applies once', () => {
  const commands: (KvCommand | Uint8Array)[] = [
    fence(A), put('x', '1', 0), put('y', '2'), put('x', '3', 1),
    put('x', '3', 1), // the client's retry of the previous put, chosen a second time
    del('y', 1), fence(B), put('x', 'late', undefined, A), put('z', 'z', 0, B), del('x', 2, B),
    Uint8Array.of(1, 2, 3),
  ];
  const first = machine(1);
  const second = machine(1);
  const outcomes = commands.map((command) => first.run(command));
  assert.deepEqual(commands.map((command) => second.run(command)), outcomes);
  assert.deepEqual(outcomes[3], { ok: true, version: 2 });
  assert.deepEqual(outcomes[4], { ok: false, code: 'VERSION_CONFLICT', version: 2 }, 'the retry does not apply twice');
  for (const key of ['x', 'y', 'z', 'w']) assert.deepEqual(first.sm.read(0, key), second.sm.read(0, key), key);
  assert.deepEqual(first.sm.read(0, 'x'), { value: undefined, version: 3 });
  assert.deepEqual(first.sm.fence(0), second.sm.fence(0));
  assert.deepEqual(first.sm.stats(), second.sm.stats());
  assert.equal(first.sm.lastExecutedInstanceId(0), commands.length - 1);
});

test('malformed bytes are a MALFORMED outcome, not a throw, and still count as executed', () => {
  const { sm, run } = machine();
  for (const bytes of [new Uint8Array(0), Uint8Array.of(0x4b, 9), encodeKvCommand(fence(A)).subarray(0, 5)]) {
    const outcome = run(bytes);
    assert.equal(outcome.ok, false);
    assert.ok(!outcome.ok && outcome.code === 'MALFORMED', JSON.stringify(outcome));
  }
  assert.equal(sm.lastExecutedInstanceId(0), 2);
  assert.equal(sm.fence(0), undefined);
});

test('a key proposed in a group it does not hash to is WRONG_GROUP', () => {
  const { sm, run } = machine(3);
  assert.equal(groupOfKey('a', 3), 1);
  run(fence(A), 0);
  run(fence(A), 1);
  const outcome = run(put('a', 'v'), 0);
  assert.ok(!outcome.ok && outcome.code === 'WRONG_GROUP', JSON.stringify(outcome));
  assert.deepEqual(sm.read(0, 'a'), { value: undefined, version: 0 });
  assert.deepEqual(run(put('a', 'v'), 1), { ok: true, version: 1 });
  assert.equal(run(del('a'), 2).ok, false);
});

test('groups are independent', () => {
  const { sm, run } = machine(3);
  run(fence(A), 1);
  assert.deepEqual(run(put('b', 'v'), 2), { ok: false, code: 'FENCED', fence: undefined }, 'group 2 has no fence');
  assert.equal(sm.fence(2), undefined);
  assert.equal(sm.lastExecutedInstanceId(1), 0);
  assert.equal(sm.lastExecutedInstanceId(0), -1);
});

test('instance ids never go back; out-of-range groups throw', () => {
  const sm = new KvStateMachine({ groups: 2 });
  const value = encodeKvCommand(fence(A));
  const execute = (groupIndex: number, instanceId: number): KvOutcome =>
    sm.execute({ groupIndex, instanceId, value, context: undefined });
  assert.equal(execute(0, 5).ok, true);
  assert.throws(() => execute(0, 4), /instance 4 after instance 5/);
  // Entries of one batch share their instance id, so the same id again is the next entry.
  assert.equal(execute(0, 5).ok, false);
  assert.equal(execute(1, 0).ok, true, 'each group counts on its own');
  for (const group of [-1, 2, 0.5]) assert.throws(() => execute(group, 100), RangeError);
  assert.throws(() => sm.read(2, 'k'), RangeError);
  assert.equal(sm.lastExecutedInstanceId(0), 5);
});

test('stats count live keys, tombstones and value bytes as they change', () => {
  const { sm, run } = machine();
  run(fence(A));
  run(put('a', 'xyz'));
  run(put('b', 'hello'));
  assert.deepEqual(sm.stats(), { keys: 2, tombstones: 0, valueBytes: 8 });
  run(put('a', 'x'));
  assert.deepEqual(sm.stats(), { keys: 2, tombstones: 0, valueBytes: 6 });
  run(del('b'));
  run(del('ghost'));
  assert.deepEqual(sm.stats(), { keys: 1, tombstones: 1, valueBytes: 1 }, 'deleting an absent key stores nothing');
  run(put('b', ''));
  assert.deepEqual(sm.stats(), { keys: 2, tombstones: 0, valueBytes: 1 });
  run(put('a', 'q', 99));
  assert.deepEqual(sm.stats(), { keys: 2, tombstones: 0, valueBytes: 1 }, 'a conflict changes nothing');
});
