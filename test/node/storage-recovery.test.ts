// StorageRecovery alone, over a fake store and fake group runtimes (the parts it drives): a halt
// that arrives after the store resumed (the group's write was refused before the resume) rebuilds
// that group only, raises no second failure (no made-up EIO) and counts no second resume; the
// reason of the last failure is kept for the metrics' labels.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { HaltReason } from '../../src/core/ready.js';
import type { GroupRuntime } from '../../src/node/group-runtime.js';
import { StorageRecovery, type ResumableStore, type StorageFailure } from '../../src/node/storage-recovery.js';
import type { LogStore } from '../../src/runtime/interfaces.js';
import { SILENT_LOGGER } from '../../src/runtime/interfaces.js';

class FakeStore implements ResumableStore {
  failure: StorageFailure | undefined;
  resumes = 0;
  storageFailure(): StorageFailure | undefined { return this.failure; }
  resume(): Promise<void> {
    this.resumes++;
    this.failure = undefined;
    return Promise.resolve();
  }

  onFailure(): void {}
}

interface FakeDriver { halted: HaltReason | null; haltForStorage(reason: HaltReason): void }

function fakeGroup(groupIndex: number): GroupRuntime {
  const driver: FakeDriver = {
    halted: null,
    haltForStorage(reason) { this.halted ??= reason; },
  };
  return { groupIndex, driver } as unknown as GroupRuntime;
}

const REFUSED: HaltReason = { code: 'STORAGE_UNAVAILABLE', message: 'log write failed: ENOSPC' };

test('a halt after the store resumed rebuilds that group only: no second failure, one resume', async () => {
  let now = 0;
  const store = new FakeStore();
  const groups = [fakeGroup(0), fakeGroup(1)];
  const rebuilt: number[] = [];
  const recovery = new StorageRecovery({
    store: store as unknown as LogStore & ResumableStore, clock: { now: () => now }, logger: SILENT_LOGGER,
    groups: () => groups,
    rebuild: (groupIndex) => {
      rebuilt.push(groupIndex);
      groups[groupIndex] = fakeGroup(groupIndex);
      return Promise.resolve();
    },
    busy: () => false,
    haltForGood: () => assert.fail('nothing halts for good here'),
    onTimersChanged: () => {},
  });
  const tickAt = async (at: number): Promise<void> => {
    now = at;
    recovery.tick();
    await recovery.whenIdle();
  };

  store.failure = { reason: 'ENOSPC', message: 'log write failed: ENOSPC' };
  recovery.onGroupHalted(REFUSED);
  assert.equal(recovery.failure?.reason, 'ENOSPC');
  assert.deepEqual(groups.map(({ driver }) => driver.halted?.code), ['STORAGE_UNAVAILABLE', 'STORAGE_UNAVAILABLE']);
  await tickAt(500);
  assert.equal(store.resumes, 1);
  assert.deepEqual(rebuilt, [0, 1]);
  assert.equal(recovery.failure, undefined);
  assert.equal(recovery.resumes, 1);

  // Group 1's write was refused before the resume; its halt is reported only now.
  (groups[1] as GroupRuntime).driver.haltForStorage(REFUSED);
  recovery.onGroupHalted(REFUSED);
  assert.equal(recovery.failure, undefined, 'the store takes writes: no new failure');
  assert.equal((groups[0] as GroupRuntime).driver.halted, null, 'the other group goes on');
  assert.ok(recovery.nextTimerAt() !== undefined, 'the halted group is rebuilt soon');
  await tickAt(recovery.nextTimerAt() as number);
  assert.deepEqual(rebuilt, [0, 1, 1]);
  assert.equal((groups[1] as GroupRuntime).driver.halted, null);
  assert.equal(recovery.resumes, 1, 'one failure, one resume');
  assert.equal(recovery.lastReason, 'ENOSPC', 'kept after the resume, for the metrics');
});

test('a rebuild whose replay a state machine failed is tried again soon, not halted for good', async () => {
  // The error restoreGroup gives when a state machine throws on every try of a replayed instance.
  const { restoreGroup } = await import('../../src/runtime/restore.js');
  const { MemoryLogStore } = await import('../../src/io/memory-log-store.js');
  const { StateMachineRegistry } = await import('../../src/runtime/state-machine-registry.js');
  const { frameValue } = await import('../../src/runtime/value-frame.js');
  const log = new MemoryLogStore();
  await log.put(0, [{
    instanceId: 0, promised: { proposalId: 1, nodeId: 1 }, accepted: { proposalId: 1, nodeId: 1 },
    value: frameValue(1, new Uint8Array([1])), checksum: 0,
  }, {
    instanceId: 1, promised: { proposalId: 1, nodeId: 1 }, accepted: { proposalId: 1, nodeId: 1 },
    value: frameValue(1, new Uint8Array([2])), checksum: 0,
  }]);
  const failing = new StateMachineRegistry(0, [{ id: 1, execute: () => { throw new Error('busy'); } }]);
  const replayFailure = await restoreGroup(log, 0, failing, { executedThrough: -1 }).catch((error: unknown) => error);
  assert.ok(replayFailure instanceof Error, 'the replay failed');

  let now = 0;
  const store = new FakeStore();
  const groups = [fakeGroup(0)];
  let attempts = 0;
  const recovery = new StorageRecovery({
    store: store as unknown as LogStore & ResumableStore, clock: { now: () => now }, logger: SILENT_LOGGER,
    groups: () => groups,
    rebuild: (groupIndex) => {
      attempts++;
      if (attempts === 1) return Promise.reject(replayFailure);
      groups[groupIndex] = fakeGroup(groupIndex);
      return Promise.resolve();
    },
    busy: () => false,
    haltForGood: () => assert.fail('a state machine that failed once must not halt the group for good'),
    onTimersChanged: () => {},
  });
  store.failure = { reason: 'ENOSPC', message: 'log write failed: ENOSPC' };
  (groups[0] as GroupRuntime).driver.haltForStorage(REFUSED);
  recovery.onGroupHalted(REFUSED);
  now = 500;
  recovery.tick();
  await recovery.whenIdle();
  assert.equal(attempts, 1);
  assert.equal(recovery.failure, undefined, 'the storage itself is fine: no failure is reported for it');
  const next = recovery.nextTimerAt();
  assert.ok(next !== undefined, 'another attempt is planned');
  now = next;
  recovery.tick();
  await recovery.whenIdle();
  assert.equal(attempts, 2);
  assert.equal((groups[0] as GroupRuntime).driver.halted, null, 'rebuilt');
});

test('a replay a state machine keeps failing is retried, backing off from 1 s to 8 s', async () => {
  const { restoreGroup } = await import('../../src/runtime/restore.js');
  const { MemoryLogStore } = await import('../../src/io/memory-log-store.js');
  const { StateMachineRegistry } = await import('../../src/runtime/state-machine-registry.js');
  const { frameValue } = await import('../../src/runtime/value-frame.js');
  const log = new MemoryLogStore();
  await log.put(0, [{
    instanceId: 0, promised: { proposalId: 1, nodeId: 1 }, accepted: { proposalId: 1, nodeId: 1 },
    value: frameValue(1, new Uint8Array([1])), checksum: 0,
  }, {
    instanceId: 1, promised: { proposalId: 1, nodeId: 1 }, accepted: { proposalId: 1, nodeId: 1 },
    value: frameValue(1, new Uint8Array([2])), checksum: 0,
  }]);
  const failing = new StateMachineRegistry(0, [{ id: 1, execute: () => { throw new Error('busy'); } }]);
  const replayFailure = await restoreGroup(log, 0, failing, { executedThrough: -1 }).catch((error: unknown) => error);
  assert.ok(replayFailure instanceof Error, 'the replay failed');

  let now = 0;
  const store = new FakeStore();
  const groups = [fakeGroup(0)];
  let attempts = 0;
  const recovery = new StorageRecovery({
    store: store as unknown as LogStore & ResumableStore, clock: { now: () => now }, logger: SILENT_LOGGER,
    groups: () => groups,
    rebuild: (groupIndex) => {
      attempts++;
      if (attempts <= 6) return Promise.reject(replayFailure);
      groups[groupIndex] = fakeGroup(groupIndex);
      return Promise.resolve();
    },
    busy: () => false,
    haltForGood: () => assert.fail('a failing state machine must not halt the group for good'),
    onTimersChanged: () => {},
  });
  store.failure = { reason: 'ENOSPC', message: 'log write failed: ENOSPC' };
  (groups[0] as GroupRuntime).driver.haltForStorage(REFUSED);
  recovery.onGroupHalted(REFUSED);
  now = 500;
  const gaps: number[] = [];
  while (attempts < 7) {
    recovery.tick();
    await recovery.whenIdle();
    const next = recovery.nextTimerAt();
    if (next === undefined) break;
    gaps.push(next - now);
    now = next;
  }
  assert.equal(attempts, 7, 'tried until the state machine stopped failing');
  assert.deepEqual(gaps.slice(0, 6), [1_000, 2_000, 4_000, 8_000, 8_000, 8_000]);
  assert.equal((groups[0] as GroupRuntime).driver.halted, null, 'rebuilt');
});
