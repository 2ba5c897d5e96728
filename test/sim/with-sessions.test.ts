// withSessions under the simulator: clients register sessions, number their commands and propose
// many of them again (as a client retries a command whose outcome it does not know), under the
// simulator's crashes, partitions and restarts. Every node must execute each (session, number) at
// most once (the wrapped machine counts executions per command), answer the retries from the stored
// result, and agree. Plus the frame codec and the wrapper alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeSessionFrame, encodeSessionFrame, withSessions, type ExecuteInput, type SessionFrame, type SessionStateMachine,
  type StateMachine,
} from '../../src/index.js';
import { simulate, type SimRandom, type SimulatedNode } from '../../src/testing/index.js';

/** Counts how often each command (its bytes as text) executed, per group. */
class ExecutionCounter implements StateMachine {
  readonly id = 7;
  readonly executions = new Map<string, number>();

  execute({ groupIndex, value }: ExecuteInput): number {
    const key = `${groupIndex}:${Buffer.from(value).toString('utf8')}`;
    const count = (this.executions.get(key) ?? 0) + 1;
    this.executions.set(key, count);
    return count;
  }
}

const SESSIONS = 4;

/**
 * Per group: registrations first (ids come out 1, 2, ... in the order they execute), then commands
 * of random sessions with the next number, and retries: a command proposed before, proposed again.
 */
function sessionWorkload(): {
  workload: (random: SimRandom, where: { groupIndex: number }) => Uint8Array; reset: () => void;
} {
  let clock = 0;
  const registered = new Map<number, number>();
  const next = new Map<string, number>();
  const sent: Extract<SessionFrame, { kind: 'command' }>[] = [];
  // Each seed starts afresh, so that a seed run alone replays exactly as it ran among others.
  const reset = (): void => {
    clock = 0;
    registered.clear();
    next.clear();
    sent.length = 0;
  };
  const workload = (random: SimRandom, { groupIndex }: { groupIndex: number }): Uint8Array => {
    clock += 10;
    const registrations = registered.get(groupIndex) ?? 0;
    if (registrations < SESSIONS || random.chance(0.02)) {
      registered.set(groupIndex, registrations + 1);
      return encodeSessionFrame({ kind: 'register', at: clock, ttlMs: 3_600_000 });
    }
    const earlier = sent.filter((frame) => frame.value[0] === groupIndex);
    if (earlier.length > 0 && random.chance(0.4)) return encodeSessionFrame({ ...random.pick(earlier), at: clock });
    const session = random.int(1, SESSIONS + 1);
    const sequence = next.get(`${groupIndex}/${session}`) ?? 1;
    next.set(`${groupIndex}/${session}`, sequence + 1);
    const frame: Extract<SessionFrame, { kind: 'command' }> = {
      kind: 'command', session, sequence, at: clock,
      value: Uint8Array.of(groupIndex, ...Buffer.from(`s${session}#${sequence}`)),
    };
    sent.push(frame);
    return encodeSessionFrame(frame);
  };
  return { workload, reset };
}

test('under the simulator, every retried command executes at most once on every node', async () => {
  let duplicates = 0;
  let executed = 0;
  const { workload, reset } = sessionWorkload();
  const report = await simulate<SessionStateMachine<ExecutionCounter>>({
    stateMachines: () => [withSessions(new ExecutionCounter())],
    seeds: { from: 1, count: 8 },
    workload,
    onSeed: reset,
    check: (nodes: readonly SimulatedNode<SessionStateMachine<ExecutionCounter>>[], cluster) => {
      for (let groupIndex = 0; groupIndex < cluster.groupCount; groupIndex++) {
        const views = nodes.map((node) => node.stateMachines(groupIndex)[0] as SessionStateMachine<ExecutionCounter>);
        for (const [index, machine] of views.entries()) {
          for (const [command, count] of machine.inner.executions) {
            assert.equal(count, 1, `node ${nodes[index]?.id}: ${command} executed ${count} times`);
          }
          duplicates += machine.duplicates;
          executed += machine.inner.executions.size;
        }
      }
    },
  });
  assert.ok(report.ok, JSON.stringify(report.failures));
  assert.ok(executed > 0, 'commands executed');
  assert.ok(duplicates > 0, 'retries were chosen and answered from the stored result');
});

test('the check can fail: without the wrapper, the same retries execute twice', async () => {
  const { workload, reset } = sessionWorkload();
  const report = await simulate<ExecutionCounter>({
    stateMachines: () => [new ExecutionCounter()],
    seeds: { from: 1, count: 2 },
    workload,
    onSeed: reset,
    check: (nodes) => {
      const most = Math.max(...nodes.map((node) => Math.max(...node.stateMachines(0)[0]?.executions.values() ?? [])));
      assert.equal(most, 1, 'a command executed more than once');
    },
  });
  assert.equal(report.ok, false);
  assert.match(JSON.stringify(report.failures), /executed more than once/);
});

test('the wrapper alone: a retry answers the stored result, an old number and an unknown session are refused', () => {
  const machine = withSessions(new ExecutionCounter(), { maxSessions: 2 });
  let instanceId = 0;
  const run = (frame: SessionFrame): unknown => machine.execute({
    groupIndex: 0, instanceId: instanceId++, value: encodeSessionFrame(frame), context: undefined,
  });
  const command = (session: number, sequence: number, at: number): SessionFrame =>
    ({ kind: 'command', session, sequence, at, value: Buffer.from(`${session}#${sequence}`) });
  assert.deepEqual(run({ kind: 'register', at: 1, ttlMs: 1_000 }), { ok: true, session: 1 });
  assert.deepEqual(run(command(1, 1, 2)), { ok: true, result: 1, duplicate: false });
  assert.deepEqual(run(command(1, 1, 3)), { ok: true, result: 1, duplicate: true });
  assert.deepEqual(run(command(1, 2, 4)), { ok: true, result: 1, duplicate: false });
  assert.equal((run(command(1, 1, 5)) as { code: string }).code, 'STALE_SEQUENCE');
  assert.equal((run(command(2, 1, 6)) as { code: string }).code, 'SESSION_EXPIRED');
  assert.equal((run(command(1, 3, 1_010)) as { code: string }).code, 'SESSION_EXPIRED', 'idle 1,006 ms of log time');
  assert.deepEqual(run({ kind: 'plain', value: Buffer.from('outside') }), { ok: true, result: 1, duplicate: false });
  const malformed = machine.execute({ groupIndex: 0, instanceId: instanceId++, value: Uint8Array.of(1), context: 0 });
  assert.equal((malformed as { code: string }).code, 'MALFORMED');
  assert.deepEqual([...machine.inner.executions.values()], [1, 1, 1], 'three commands, each executed once');
  assert.throws(() => withSessions({ id: 1, execute: () => 0, checkpointInstanceId: () => -1 }), TypeError);
});

test('session frames round-trip, and malformed ones are refused', () => {
  const frames: SessionFrame[] = [
    { kind: 'plain', value: Uint8Array.of(1, 2) },
    { kind: 'register', at: 2 ** 50, ttlMs: 5 },
    { kind: 'command', session: 3, sequence: 2 ** 40, at: 7, value: Uint8Array.of(9) },
  ];
  for (const frame of frames) assert.deepEqual(decodeSessionFrame(encodeSessionFrame(frame)), frame);
  assert.throws(() => decodeSessionFrame(Uint8Array.of(0x53)), /not a session frame/);
  assert.throws(() => decodeSessionFrame(Uint8Array.of(0x53, 9)), /unknown session frame kind/);
  assert.throws(() => decodeSessionFrame(encodeSessionFrame(frames[1] as SessionFrame).subarray(0, 13)), /14 bytes/);
  assert.throws(() => decodeSessionFrame(encodeSessionFrame(frames[2] as SessionFrame).subarray(0, 20)), /truncated/);
  assert.throws(() => encodeSessionFrame({ kind: 'register', at: 1, ttlMs: 0 }), /ttlMs/);
});
