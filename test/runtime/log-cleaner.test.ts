// The log cleaner's bound (what may go) and its passes over a MemoryLogStore, then the core side:
// once the log is cleaned, the teacher sends a learner below the new low-water mark to a checkpoint.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { cleanBound, LogCleaner, type CleanableGroup } from '../../src/runtime/log-cleaner.js';
import type { StateMachine } from '../../src/runtime/interfaces.js';
import { ballot, drain, makeCore } from '../core/fixtures.js';

const base = { holdInstances: 0, nowInstanceId: 1_000, minChosenInstanceId: 0, installPending: false };

describe('cleanBound', () => {
  test('no state machine, one without a checkpoint, or one at -1: nothing goes', () => {
    assert.equal(cleanBound({ ...base, checkpoints: [] }), undefined);
    assert.equal(cleanBound({ ...base, checkpoints: [500, undefined] }), undefined);
    assert.equal(cleanBound({ ...base, checkpoints: [500, -1] }), undefined);
    assert.equal(cleanBound({ ...base, checkpoints: [-1] }), undefined);
  });

  test('below the lowest checkpoint + 1, less the hold', () => {
    assert.equal(cleanBound({ ...base, checkpoints: [500, 700] }), 501);
    assert.equal(cleanBound({ ...base, checkpoints: [500, 700], holdInstances: 100 }), 401);
    assert.equal(cleanBound({ ...base, checkpoints: [500], holdInstances: 501 }), undefined, 'the hold covers it all');
  });

  test('a checkpoint install under way stops cleaning', () => {
    assert.equal(cleanBound({ ...base, checkpoints: [500], installPending: true }), undefined);
  });

  test('never at or above the current instance: the newest chosen record stays', () => {
    assert.equal(cleanBound({ ...base, checkpoints: [999] }), 999);
    assert.equal(cleanBound({ ...base, checkpoints: [5_000] }), 999, 'a checkpoint ahead of the log');
    assert.equal(cleanBound({ ...base, checkpoints: [0], nowInstanceId: 1 }), undefined);
  });

  test('nothing when the log is already clean up to the bound', () => {
    assert.equal(cleanBound({ ...base, checkpoints: [500], minChosenInstanceId: 501 }), undefined);
    assert.equal(cleanBound({ ...base, checkpoints: [500], minChosenInstanceId: 600 }), undefined, 'never moves down');
  });
});

function record(instanceId: number): AcceptorRecord {
  return {
    instanceId, promised: ballot(1, 1), accepted: ballot(1, 1), value: new Uint8Array([1]), checksum: instanceId,
  };
}

interface FakeGroup extends CleanableGroup {
  checkpoint: number | undefined;
  now: number;
  min: number;
  withoutCheckpoint: boolean;
}

function fakeGroup(groupIndex: number): FakeGroup {
  const group: FakeGroup = {
    groupIndex, checkpoint: undefined, now: 0, min: 0, withoutCheckpoint: false,
    nowInstanceId: () => group.now,
    minChosenInstanceId: () => group.min,
    userStateMachines: (): StateMachine[] => [group.withoutCheckpoint
      ? { id: 1, execute: () => undefined }
      : { id: 1, execute: () => undefined, checkpointInstanceId: () => group.checkpoint ?? -1 }],
    halted: () => false,
    setMinChosenInstanceId: (instanceId) => { group.min = instanceId; },
  };
  return group;
}

async function storeWith(instances: number): Promise<MemoryLogStore> {
  const store = new MemoryLogStore();
  await store.put(0, Array.from({ length: instances }, (_, id) => record(id)));
  return store;
}

function cleanerOver(
  store: MemoryLogStore, group: FakeGroup, holdInstances: number, maxInstancesPerPass = 1_000,
): LogCleaner {
  return new LogCleaner({
    store, clock: { now: () => 0 }, logger: { info() {}, warn() {}, error() {} },
    settings: { holdInstances, intervalMs: 100, maxInstancesPerPass }, groups: [group], onTimersChanged: () => {},
  });
}

describe('LogCleaner passes', () => {
  test('deletes below the bound, durably in the store, and tells the group', async () => {
    const store = await storeWith(100);
    const group = Object.assign(fakeGroup(0), { now: 100, checkpoint: 60 });
    const cleaner = cleanerOver(store, group, 10);
    assert.equal(await cleaner.pass(group), false);
    assert.equal(await store.minChosenInstanceId(0), 51);
    assert.equal(group.min, 51, 'the core learns the new min chosen instance');
    assert.equal(await store.get(0, 50), undefined);
    assert.ok(await store.get(0, 51) !== undefined, 'the hold is kept');
    assert.equal(cleaner.instancesCleaned(0), 51);
  });

  test('-1, no checkpoint method, or a pending install: nothing is deleted', async () => {
    const store = await storeWith(100);
    const group = Object.assign(fakeGroup(0), { now: 100, checkpoint: -1 });
    const cleaner = cleanerOver(store, group, 0);
    await cleaner.pass(group);
    group.checkpoint = 80;
    group.withoutCheckpoint = true;
    await cleaner.pass(group);
    group.withoutCheckpoint = false;
    await store.setPendingCheckpoint(0, { instanceId: 90 });
    await cleaner.pass(group);
    assert.equal(await store.minChosenInstanceId(0), 0);
    assert.ok(await store.get(0, 0) !== undefined);
    await store.setPendingCheckpoint(0, undefined);
    await cleaner.pass(group);
    assert.equal(await store.minChosenInstanceId(0), 81, 'cleans once the install is over');
  });

  // Sim seeds 62 and 135: with hold 0, a receiver's checkpoint was always behind every peer's log
  // by the time it installed (the group kept moving), so it asked again and again.
  test('the log after a checkpoint being sent is kept for its receiver', async () => {
    const store = await storeWith(100);
    let keep: number | undefined = 41;
    const group = Object.assign(fakeGroup(0), { now: 100, checkpoint: 80, keepLogFrom: () => keep });
    const cleaner = cleanerOver(store, group, 0);
    assert.equal(await cleaner.pass(group), false, 'no backlog: the rest waits for the receiver');
    assert.equal(await store.minChosenInstanceId(0), 41);
    assert.ok(await store.get(0, 41) !== undefined);
    keep = undefined;
    await cleaner.pass(group);
    assert.equal(await store.minChosenInstanceId(0), 81, 'cleans once the receiver is served');
  });

  test('bounded work per pass: a backlog is cleaned in steps', async () => {
    const store = await storeWith(100);
    const group = Object.assign(fakeGroup(0), { now: 100, checkpoint: 98 });
    const cleaner = cleanerOver(store, group, 0, 40);
    assert.equal(await cleaner.pass(group), true, 'more to do');
    assert.equal(group.min, 40);
    assert.equal(await cleaner.pass(group), true);
    assert.equal(await cleaner.pass(group), false);
    assert.equal(group.min, 99, 'the newest chosen record (99) stays');
    assert.ok(await store.get(0, 99) !== undefined);
  });

  test('a node with no checkpointing state machine never arms a cleaning timer', () => {
    const group = Object.assign(fakeGroup(0), { withoutCheckpoint: true });
    assert.equal(cleanerOver(new MemoryLogStore(), group, 0).nextTimerAt(), undefined);
    assert.equal(cleanerOver(new MemoryLogStore(), fakeGroup(0), 0).nextTimerAt(), 100);
  });
});

describe('the teacher follows the cleaned log', () => {
  test('a learner below the new min chosen instance is told it (sendNowInstanceId), not taught', () => {
    const core = makeCore({ nodeId: 1, members: [1, 2, 3] }, { nowInstanceId: 50, minChosenInstanceId: 0 });
    drain(core);
    core.setMinChosenInstanceId(30);
    assert.equal(core.minChosenInstanceId, 30);
    assert.equal(core.status().minChosenInstanceId, 30);
    core.step({ kind: 'askForLearn', from: 2, instanceId: 10 });
    const sent = drain(core).messages.map((outbound) => outbound.message);
    assert.deepEqual(sent, [{ kind: 'sendNowInstanceId', from: 1, instanceId: 10, nowInstanceId: 50, minChosenInstanceId: 30 }]);
    core.setMinChosenInstanceId(20);
    assert.equal(core.minChosenInstanceId, 30, 'never moves down');
    assert.throws(() => core.setMinChosenInstanceId(51), /not at or below the current instance/);
  });
});

