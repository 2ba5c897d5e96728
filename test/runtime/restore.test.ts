import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NULL_BALLOT } from '../../src/core/ballot.js';
import type { AcceptorRecord } from '../../src/core/ready.js';
import { PaxosError } from '../../src/errors.js';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import type { ExecuteInput, LogStore, StateMachine } from '../../src/runtime/interfaces.js';
import { isReplayExecutionFailure, restoreGroup } from '../../src/runtime/restore.js';
import { StateMachineRegistry } from '../../src/runtime/state-machine-registry.js';
import { frameValue } from '../../src/runtime/value-frame.js';
import { fromUtf8, utf8 } from '../../src/util/bytes.js';

const SM_ID = 1;

class Recorder implements StateMachine {
  readonly id = SM_ID;
  readonly executed: { instanceId: number; value: string; context: unknown }[] = [];
  failAt: number | null = null;
  constructor(private readonly checkpoint?: number) {}

  execute(input: ExecuteInput): unknown {
    if (input.instanceId === this.failAt) throw new Error(`cannot execute ${input.instanceId}`);
    this.executed.push({ instanceId: input.instanceId, value: fromUtf8(input.value), context: input.context });
    return undefined;
  }

  checkpointInstanceId(): number {
    return this.checkpoint ?? -1;
  }
}

function chosenRecord(instanceId: number, promisedId = 3): AcceptorRecord {
  return {
    instanceId, promised: { proposalId: promisedId, nodeId: 2 }, accepted: { proposalId: 3, nodeId: 2 },
    value: frameValue(SM_ID, utf8(`v${instanceId}`)), checksum: 500 + instanceId,
  };
}

/** A log with chosen values at 0..max-1 and, at `max`, the newest record (accepted or only promised). */
async function logUpTo(max: number, newestAccepted = true): Promise<LogStore> {
  const store: LogStore = new MemoryLogStore();
  const records = Array.from({ length: max }, (_, index) => chosenRecord(index));
  const newest = newestAccepted ? chosenRecord(max, 7)
    : { ...chosenRecord(max, 7), accepted: NULL_BALLOT, value: new Uint8Array(0), checksum: 0 };
  await store.put(0, [...records, newest], { sync: true });
  return store;
}

async function startupError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof PaxosError);
    assert.equal(error.code, 'STARTUP_FAILED');
    assert.match(error.message, pattern);
    return true;
  });
}

describe('restoreGroup', () => {
  test('an empty log starts at instance 0 with nothing promised', async () => {
    const state = await restoreGroup(new MemoryLogStore(), 0, new StateMachineRegistry(0, [new Recorder()]));
    assert.deepEqual(state, {
      nowInstanceId: 0, lastChecksum: 0, minChosenInstanceId: 0,
      acceptor: { promised: NULL_BALLOT, accepted: NULL_BALLOT, value: new Uint8Array(0), checksum: 0 },
    });
  });

  test('replays [C, A) in order and resumes at A with its loaded acceptor state', async () => {
    const store = await logUpTo(4);
    const machine = new Recorder();
    const state = await restoreGroup(store, 0, new StateMachineRegistry(0, [machine]));
    assert.deepEqual(machine.executed.map((entry) => [entry.instanceId, entry.value]),
      [[0, 'v0'], [1, 'v1'], [2, 'v2'], [3, 'v3']]);
    assert.ok(machine.executed.every((entry) => entry.context === undefined), 'replay has no proposer context');
    assert.equal(state.nowInstanceId, 4);
    assert.deepEqual(state.acceptor.promised, { proposalId: 7, nodeId: 2 });
    assert.deepEqual(state.acceptor.accepted, { proposalId: 3, nodeId: 2 }, 'instance A stays undecided with its state');
    assert.equal(fromUtf8(state.acceptor.value.subarray(4)), 'v4');
    assert.equal(state.acceptor.checksum, 504);
    assert.equal(state.lastChecksum, 503, 'the chain is read from record A - 1');
  });

  test('replays only above the state machine\'s checkpoint', async () => {
    const machine = new Recorder(1);
    const state = await restoreGroup(await logUpTo(4), 0, new StateMachineRegistry(0, [machine]));
    assert.deepEqual(machine.executed.map((entry) => entry.instanceId), [2, 3]);
    assert.equal(state.nowInstanceId, 4);
  });

  test('C == A replays nothing', async () => {
    const machine = new Recorder(3);
    const state = await restoreGroup(await logUpTo(4, false), 0, new StateMachineRegistry(0, [machine]));
    assert.deepEqual(machine.executed, []);
    assert.equal(state.nowInstanceId, 4);
    assert.deepEqual(state.acceptor.accepted, NULL_BALLOT);
    assert.deepEqual(state.acceptor.promised, { proposalId: 7, nodeId: 2 });
  });

  test('C == A + 1 resumes after the checkpoint, keeping the promise but not the accepted value', async () => {
    const machine = new Recorder(4);
    const state = await restoreGroup(await logUpTo(4), 0, new StateMachineRegistry(0, [machine]));
    assert.deepEqual(machine.executed, []);
    assert.equal(state.nowInstanceId, 5);
    assert.deepEqual(state.acceptor.promised, { proposalId: 7, nodeId: 2 });
    assert.deepEqual(state.acceptor.accepted, NULL_BALLOT);
    assert.equal(state.acceptor.value.length, 0);
    assert.equal(state.lastChecksum, 504);
  });

  test('C > A + 1 on a non-empty log refuses to start', async () => {
    const store = await logUpTo(4);
    await startupError(restoreGroup(store, 0, new StateMachineRegistry(0, [new Recorder(5)])),
      /checkpoint is at instance 5 but the log ends at 4/);
  });

  test('an empty log with a checkpoint starts after it and records the min chosen instance', async () => {
    const store: LogStore = new MemoryLogStore();
    const state = await restoreGroup(store, 0, new StateMachineRegistry(0, [new Recorder(9)]));
    assert.equal(state.nowInstanceId, 10);
    assert.equal(state.minChosenInstanceId, 10);
    assert.equal(await store.minChosenInstanceId(0), 10);
    assert.equal(state.lastChecksum, 0, 'nothing before the checkpoint is known');
  });

  test('a log cleaned above the replay start refuses to start', async () => {
    const store = await logUpTo(6);
    await store.deleteBelow(0, 3);
    await startupError(restoreGroup(store, 0, new StateMachineRegistry(0, [new Recorder(1)])),
      /need instance 2, but the log starts at 3/);
  });

  test('a cleaned log replays from its start when the checkpoint allows', async () => {
    const store = await logUpTo(6);
    await store.deleteBelow(0, 3);
    const machine = new Recorder(2);
    const state = await restoreGroup(store, 0, new StateMachineRegistry(0, [machine]));
    assert.deepEqual(machine.executed.map((entry) => entry.instanceId), [3, 4, 5]);
    assert.equal(state.minChosenInstanceId, 3);
    assert.equal(state.lastChecksum, 505);
  });

  test('a hole or an unchosen record below the log end refuses to start', async () => {
    const store = await logUpTo(4);
    await store.put(0, [{ ...chosenRecord(2), accepted: NULL_BALLOT }], { sync: true });
    const refusal = await restoreGroup(store, 0, new StateMachineRegistry(0, [new Recorder()])).catch((error) => error);
    await startupError(Promise.reject(refusal), /instance 2 is below the log's end but has no chosen value/);
    assert.equal(isReplayExecutionFailure(refusal), false, 'a broken log is not a state machine failure');
  });

  test('a failing replay refuses to start and keeps the cause', async () => {
    const machine = new Recorder();
    machine.failAt = 1;
    await assert.rejects(restoreGroup(await logUpTo(3), 0, new StateMachineRegistry(0, [machine])),
      (error: unknown) => {
        assert.ok(error instanceof PaxosError);
        assert.equal(error.code, 'STARTUP_FAILED');
        assert.match(String((error.cause as Error).message), /cannot execute 1/);
        assert.equal(isReplayExecutionFailure(error), true, 'told apart from a broken log');
        return true;
      });
    assert.deepEqual(machine.executed.map((entry) => entry.instanceId), [0]);
  });

  test('the chain is unknown (0) when record now - 1 is missing', async () => {
    const store: LogStore = new MemoryLogStore();
    await store.put(0, [chosenRecord(5)], { sync: true });
    const state = await restoreGroup(store, 0, new StateMachineRegistry(0, [new Recorder(4)]));
    assert.equal(state.nowInstanceId, 5);
    assert.equal(state.lastChecksum, 0);
  });
});
