import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExecuteInput, StateMachine } from '../../src/runtime/interfaces.js';
import { StateMachineRegistry } from '../../src/runtime/state-machine-registry.js';
import { frameValue, SYSTEM_STATE_MACHINE_ID } from '../../src/runtime/value-frame.js';
import { fromUtf8, utf8 } from '../../src/util/bytes.js';

class RecordingStateMachine implements StateMachine {
  readonly inputs: ExecuteInput[] = [];
  constructor(readonly id: number, private readonly checkpoint?: number, private readonly result: unknown = 'ok') {}

  execute(input: ExecuteInput): unknown {
    this.inputs.push(input);
    return this.result;
  }

  get checkpointInstanceId(): ((groupIndex: number) => number) | undefined {
    const checkpoint = this.checkpoint;
    return checkpoint === undefined ? undefined : () => checkpoint;
  }

  get payloads(): string[] {
    return this.inputs.map((input) => fromUtf8(input.value));
  }
}

describe('StateMachineRegistry', () => {
  test('routes a value to the state machine its frame names, without the frame', async () => {
    const one = new RecordingStateMachine(1, undefined, 'from one');
    const two = new RecordingStateMachine(2, undefined, 'from two');
    const registry = new StateMachineRegistry(4, [one, two]);
    const context = { caller: 'me' };
    assert.equal(await registry.execute(9, frameValue(2, utf8('x')), context), 'from two');
    assert.deepEqual(one.inputs, []);
    assert.equal(two.inputs.length, 1);
    const input = two.inputs[0];
    assert.equal(input?.groupIndex, 4);
    assert.equal(input?.instanceId, 9);
    assert.equal(input?.context, context);
    assert.equal(fromUtf8(input?.value ?? new Uint8Array()), 'x');
  });

  test('awaits asynchronous state machines and passes their rejections on', async () => {
    const asyncMachine: StateMachine = { id: 3, execute: async () => 'later' };
    const failing: StateMachine = { id: 4, execute: async () => { throw new Error('boom'); } };
    const registry = new StateMachineRegistry(0, [asyncMachine, failing]);
    assert.equal(await registry.execute(0, frameValue(3, utf8('')), undefined), 'later');
    await assert.rejects(registry.execute(0, frameValue(4, utf8('')), undefined), /boom/);
  });

  test('id 0 (and a value too short for an id) is a no-op', async () => {
    const one = new RecordingStateMachine(1);
    const registry = new StateMachineRegistry(0, [one]);
    assert.equal(await registry.execute(0, frameValue(0, utf8('x')), undefined), undefined);
    assert.equal(await registry.execute(1, utf8('ab'), undefined), undefined);
    assert.deepEqual(one.inputs, []);
  });

  test('an unknown id throws rather than being skipped', async () => {
    const registry = new StateMachineRegistry(3, [new RecordingStateMachine(1)]);
    await assert.rejects(registry.execute(5, frameValue(2, utf8('x')), undefined),
      /group 3 instance 5: no state machine with id 2/);
    await assert.rejects(registry.execute(5, frameValue(SYSTEM_STATE_MACHINE_ID, utf8('x')), undefined));
  });

  test('refuses reserved, invalid and duplicate ids', () => {
    const registry = new StateMachineRegistry(0);
    for (const id of [0, SYSTEM_STATE_MACHINE_ID, -3, 2.5]) {
      assert.throws(() => registry.add(new RecordingStateMachine(id)), RangeError, String(id));
    }
    registry.add(new RecordingStateMachine(8));
    assert.throws(() => registry.add(new RecordingStateMachine(8)), /already registered/);
    assert.deepEqual(registry.stateMachines.map((machine) => machine.id), [8]);
  });

  test('instances at or below each state machine\'s start-up checkpoint are skipped, in replay and live', async () => {
    const behind = new RecordingStateMachine(1, 4);
    const ahead = new RecordingStateMachine(2, 6);
    const registry = new StateMachineRegistry(0, [behind, ahead]);
    assert.equal(registry.replayFromInstanceId(), 5, 'start-up captures the checkpoints');
    for (let instanceId = 5; instanceId <= 8; instanceId++) {
      await registry.execute(instanceId, frameValue(1, utf8(`a${instanceId}`)), undefined);
      await registry.execute(instanceId, frameValue(2, utf8(`b${instanceId}`)), undefined);
    }
    assert.deepEqual(behind.payloads, ['a5', 'a6', 'a7', 'a8']);
    assert.deepEqual(ahead.payloads, ['b7', 'b8']);
  });

  test('replay starts above the lowest checkpoint', () => {
    assert.equal(new StateMachineRegistry(0).replayFromInstanceId(), 0, 'no state machines: from the start');
    assert.equal(new StateMachineRegistry(0, [new RecordingStateMachine(1)]).replayFromInstanceId(), 0,
      'no checkpoint means -1');
    assert.equal(new StateMachineRegistry(0, [new RecordingStateMachine(1, 9), new RecordingStateMachine(2, 4)])
      .replayFromInstanceId(), 5);
    assert.equal(new StateMachineRegistry(0, [new RecordingStateMachine(1, 9), new RecordingStateMachine(2)])
      .replayFromInstanceId(), 0, 'one state machine without a checkpoint needs everything');
  });

  test('the checkpoint is asked for the registry\'s group', () => {
    const asked: number[] = [];
    const machine: StateMachine = {
      id: 1, execute: () => undefined, checkpointInstanceId: (groupIndex) => { asked.push(groupIndex); return 2; },
    };
    assert.equal(new StateMachineRegistry(6, [machine]).replayFromInstanceId(), 3);
    assert.deepEqual(asked, [6]);
  });
});
