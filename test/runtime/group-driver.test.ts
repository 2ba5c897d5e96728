// GroupDriver with a MemoryLogStore (or a store whose writes a test completes by hand), a fake
// transport and a manual clock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { proposalBody, proposalIdentityOf } from '../../src/core/proposal-identity.js';
import { chainStep } from '../../src/core/group-context.js';
import { GroupCore } from '../../src/core/group-core.js';
import { TEACH_BYTES_BEYOND_ACK } from '../../src/core/teacher.js';
import type { PaxosMessage } from '../../src/core/messages.js';
import type { AcceptorRecord, HaltReason } from '../../src/core/ready.js';
import { PaxosError } from '../../src/errors.js';
import { MemoryLogStore } from '../../src/io/memory-log-store.js';
import { GroupDriver } from '../../src/runtime/group-driver.js';
import { SILENT_LOGGER, type Clock, type ExecuteInput, type LogStore, type StateMachine } from '../../src/runtime/interfaces.js';
import type { ProposeSuccess } from '../../src/runtime/proposal-queue.js';
import { restoreGroup } from '../../src/runtime/restore.js';
import { StateMachineRegistry } from '../../src/runtime/state-machine-registry.js';
import { frameValue } from '../../src/runtime/value-frame.js';
import { fullCrc32 } from '../../src/testing/crc32.js';
import { fromUtf8, utf8 } from '../../src/util/bytes.js';
import {
  acceptMsg, acceptOkMsg, ballot, makeConfig, prepareMsg, prepareRejectMsg, promiseMsg,
} from '../core/fixtures.js';

const SM_ID = 1;

class ManualClock implements Clock {
  ms = 0;
  now(): number {
    return this.ms;
  }
}

class EchoStateMachine implements StateMachine {
  readonly id = SM_ID;
  readonly inputs: ExecuteInput[] = [];
  /** How many of the next executions throw. */
  failNext = 0;
  execute(input: ExecuteInput): unknown {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error(`cannot execute ${fromUtf8(input.value)}`);
    }
    this.inputs.push(input);
    return `executed ${fromUtf8(input.value)}`;
  }

  get executed(): string[] {
    return this.inputs.map((input) => fromUtf8(input.value));
  }
}

interface PendingPut {
  readonly records: readonly AcceptorRecord[];
  readonly sync: boolean;
  resolve(): void;
  reject(error: Error): void;
}

/** A MemoryLogStore whose writes wait until the test resolves (or fails) them. */
class GatedStore extends MemoryLogStore {
  readonly puts: PendingPut[] = [];

  override put(
    groupIndex: number, records: readonly AcceptorRecord[], options?: { readonly sync: boolean },
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.puts.push({
        records, sync: options?.sync ?? false,
        resolve: () => { super.put(groupIndex, records).then(resolve, reject); },
        reject,
      });
    });
  }
}

/** A MemoryLogStore whose writes fail from the `failFrom`-th one on (1-based). */
class FailingStore extends MemoryLogStore {
  writes = 0;
  constructor(private readonly failFrom: number) {
    super();
  }

  override async put(groupIndex: number, records: readonly AcceptorRecord[]): Promise<void> {
    this.writes++;
    if (this.writes >= this.failFrom) throw new Error('disk on fire');
    await super.put(groupIndex, records);
  }
}

/** A MemoryLogStore whose reads fail once `failReads` is set. */
class ReadFailingStore extends MemoryLogStore {
  failReads = false;

  override async get(groupIndex: number, instanceId: number): Promise<AcceptorRecord | undefined> {
    if (this.failReads) throw new Error('disk on fire');
    return await super.get(groupIndex, instanceId);
  }
}

interface Sent {
  readonly to: number;
  readonly message: PaxosMessage;
}

interface Rig {
  readonly driver: GroupDriver;
  readonly clock: ManualClock;
  readonly machine: EchoStateMachine;
  readonly sent: Sent[];
  readonly halts: HaltReason[];
  readonly fatal: unknown[];
}

/**
 * Node 1 of a group with `members`. Messages to itself come back through the "transport" on a
 * later turn, as a real loopback would deliver them.
 */
async function rig(
  store: LogStore, members: number[] = [1], queueCapacity = 8, batchCount = 1,
  deferFeed?: (feed: () => void) => void,
): Promise<Rig> {
  const clock = new ManualClock();
  const machine = new EchoStateMachine();
  const registry = new StateMachineRegistry(0, [machine]);
  const restored = await restoreGroup(store, 0, registry);
  const core = new GroupCore(makeConfig({ nodeId: 1, members }), restored, clock.now());
  const sent: Sent[] = [];
  const halts: HaltReason[] = [];
  const fatal: unknown[] = [];
  const driver: GroupDriver = new GroupDriver({
    groupIndex: 0, core, store, registry, clock, logger: SILENT_LOGGER, syncWrites: true,
    queueLimits: { maxCount: queueCapacity, maxBytes: 1 << 20 },
    batchLimits: { maxCount: batchCount, maxBytes: 1 << 20 },
    send: (_group, to, message) => {
      sent.push({ to, message });
      if (to === 1) setImmediate(() => driver.step(message));
    },
    onTimersChanged: () => {},
    onFatal: (error) => fatal.push(error),
    onHalt: (reason) => halts.push(reason),
    ...(deferFeed === undefined ? {} : { deferFeed }),
  });
  return { driver, clock, machine, sent, halts, fatal };
}

function framed(text: string): Uint8Array {
  return frameValue(SM_ID, utf8(text));
}

async function turns(count = 20): Promise<void> {
  for (let i = 0; i < count; i++) await nextTurn();
}

type Settled = { ok: true; value: ProposeSuccess } | { ok: false; error: PaxosError } | 'pending';

/** Track a promise's state without awaiting it. */
function track(promise: Promise<ProposeSuccess>): () => Settled {
  let state: Settled = 'pending';
  promise.then((value) => { state = { ok: true, value }; }, (error: PaxosError) => { state = { ok: false, error }; });
  return () => state;
}

function expectError(state: Settled, code: string): PaxosError {
  assert.ok(state !== 'pending', `expected ${code}, but the proposal is still pending`);
  assert.ok(!state.ok, `expected ${code}, but the proposal succeeded`);
  assert.ok(state.error instanceof PaxosError);
  assert.equal(state.error.code, code);
  return state.error;
}

describe('GroupDriver', () => {
  test('a one-node group proposes and resolves with the state machine\'s result', async () => {
    const store = new MemoryLogStore();
    const { driver, machine, fatal } = await rig(store);
    const first = await driver.propose(framed('x'), { timeoutMs: 5000, context: 'my context' });
    assert.deepEqual(first, { instanceId: 0, batchIndex: 0, result: 'executed x' });
    assert.equal(machine.inputs[0]?.context, 'my context', 'the proposer\'s context reaches its own execution');
    const second = await driver.propose(framed('y'), { timeoutMs: 5000 });
    assert.deepEqual(second, { instanceId: 1, batchIndex: 0, result: 'executed y' });
    assert.equal(driver.nowInstanceId, 2);
    const record = await store.get(0, 1);
    // The log holds the agreed bytes: the framed value in an envelope naming its proposal.
    assert.ok(record !== undefined);
    assert.equal(fromUtf8(proposalBody(record.value).subarray(4)), 'y');
    assert.equal(proposalIdentityOf(record.value)?.nodeId, 1);
    assert.equal(proposalIdentityOf(record.value)?.sequence, 2, 'the second proposal of this life');
    assert.deepEqual(fatal, []);
  });

  test('proposals queue behind each other and resolve in order', async () => {
    const { driver } = await rig(new MemoryLogStore());
    const results = await Promise.all(['a', 'b', 'c'].map((value) => driver.propose(framed(value), { timeoutMs: 5000 })));
    assert.deepEqual(results.map((result) => [result.instanceId, result.result]),
      [[0, 'executed a'], [1, 'executed b'], [2, 'executed c']]);
  });

  test('a value for no state machine resolves with undefined', async () => {
    const { driver, machine } = await rig(new MemoryLogStore());
    assert.deepEqual(await driver.propose(frameValue(0, utf8('noop')), { timeoutMs: 5000 }),
      { instanceId: 0, batchIndex: 0, result: undefined });
    assert.deepEqual(machine.inputs, []);
  });

  test('a full queue rejects with OVERLOADED at once', async () => {
    const store = new GatedStore();
    const { driver } = await rig(store, [1], 1);
    const first = track(driver.propose(framed('a'), { timeoutMs: 5000 }));
    await turns(1);
    assert.equal(driver.queueDepth.proposals, 0, 'the first went at the end of its turn');
    const second = track(driver.propose(framed('b'), { timeoutMs: 5000 }));
    const third = track(driver.propose(framed('c'), { timeoutMs: 5000 }));
    await turns();
    assert.equal(first(), 'pending');
    assert.equal(second(), 'pending', 'one waits in the queue');
    expectError(third(), 'OVERLOADED');
  });

  test('records are written with sync and acceptor replies leave only after the write completed', async () => {
    const store = new GatedStore();
    const { driver, sent } = await rig(store, [1, 2, 3]);
    track(driver.propose(framed('a'), { timeoutMs: 60_000 }));
    await turns();
    assert.equal(store.puts.length, 1);
    assert.equal(store.puts[0]?.sync, true);
    assert.deepEqual(store.puts[0]?.records.map((record) => record.promised), [ballot(1, 1)]);
    assert.equal(sent.length, 0, 'neither the prepare nor the local promise leaves before the promise is durable');

    store.puts[0]?.resolve();
    await turns();
    assert.deepEqual(sent.map((entry) => `${entry.message.kind}->${entry.to}`).sort(),
      ['prepare->2', 'prepare->3', 'prepareReply->1']);

    // A promise from node 2 completes phase 1: the accepts go out at once, the local accept reply waits.
    driver.step(promiseMsg(2, 0, ballot(1, 1)));
    await turns();
    assert.equal(store.puts.length, 2);
    const afterPhase1 = sent.slice(3).map((entry) => [entry.message.kind, entry.to]);
    assert.deepEqual(afterPhase1, [['accept', 2], ['accept', 3]]);

    store.puts[1]?.resolve();
    await turns();
    assert.deepEqual(sent.slice(5).map((entry) => [entry.message.kind, entry.to]), [['acceptReply', 1]]);
  });

  test('a failing write halts the group with GROUP_HALTED and rejects every pending proposal', async () => {
    const store = new FailingStore(1);
    const { driver, halts, sent, fatal } = await rig(store);
    const first = track(driver.propose(framed('a'), { timeoutMs: 60_000 }));
    const second = track(driver.propose(framed('b'), { timeoutMs: 60_000 }));
    await turns();
    const inFlight = expectError(first(), 'GROUP_HALTED');
    assert.equal(inFlight.mayBeChosen, true, 'the first proposal had started');
    const queued = expectError(second(), 'GROUP_HALTED');
    assert.equal(queued.mayBeChosen, false, 'the second was never sent');
    assert.equal(halts.length, 1);
    assert.equal(halts[0]?.code, 'GROUP_HALTED');
    assert.match(halts[0]?.message ?? '', /disk on fire/);
    assert.deepEqual(driver.halted, halts[0]);
    assert.equal(sent.length, 0, 'nothing that depended on the failed write left');
    await assert.rejects(driver.propose(framed('c'), { timeoutMs: 1000 }), (error: unknown) =>
      error instanceof PaxosError && error.code === 'GROUP_HALTED');
    assert.deepEqual(fatal, []);
  });

  test('a failed log read for a learner halts the group like a failed write; it is not a missing record', async () => {
    const store = new ReadFailingStore();
    const { driver, halts, sent, fatal } = await rig(store);
    await driver.propose(framed('a'), { timeoutMs: 60_000 });
    await driver.propose(framed('b'), { timeoutMs: 60_000 });
    store.failReads = true;
    // Node 2 (anyone may ask) is behind at 0: node 1 teaches it from the log.
    driver.step({ kind: 'askForLearn', from: 2, instanceId: 0 });
    await turns();
    assert.ok(sent.some((entry) => entry.message.kind === 'sendNowInstanceId' && entry.to === 2));
    driver.step({ kind: 'confirmAskForLearn', from: 2, instanceId: 0 });
    await turns();
    assert.equal(halts.length, 1, 'a storage error halts the group');
    assert.equal(halts[0]?.code, 'GROUP_HALTED');
    assert.match(halts[0]?.message ?? '', /log read failed.*disk on fire/);
    assert.equal(sent.filter((entry) => entry.message.kind === 'learnValue').length, 0);
    await assert.rejects(driver.propose(framed('c'), { timeoutMs: 1000 }), (error: unknown) =>
      error instanceof PaxosError && error.code === 'GROUP_HALTED');
    assert.deepEqual(fatal, []);
  });

  test('a learner is taught within the teacher\'s byte budget when large values follow many small ones', async () => {
    // 300 small values, then 30 of 900 KB: the teacher's estimate (reads at the largest size sent so
    // far) still says 100 bytes when it asks for the large ones. The store here (no getMany) reads
    // all it is asked; the driver hands over only what fits the Ready's byte limit.
    const store = new MemoryLogStore();
    const { driver, sent, fatal } = await rig(store);
    for (let index = 0; index < 300; index++) await driver.propose(framed(`small ${index}`), { timeoutMs: 60_000 });
    const large = 'x'.repeat(900_000);
    for (let index = 0; index < 30; index++) await driver.propose(framed(`${large}${index}`), { timeoutMs: 60_000 });
    driver.step({ kind: 'askForLearn', from: 2, instanceId: 0 });
    await turns();
    driver.step({ kind: 'confirmAskForLearn', from: 2, instanceId: 0 });
    await turns(200);
    const taught = (): { instanceId: number; bytes: number }[] => sent.flatMap(({ to, message }) =>
      to === 2 && message.kind === 'learnValue' ? [{ instanceId: message.instanceId, bytes: message.value.length }] : []);
    const first = taught();
    const bytes = first.reduce((sum, value) => sum + value.bytes, 0);
    assert.ok(first.length > 300 && first.length < 330, `taught ${first.length} values before any ack`);
    assert.ok(bytes <= TEACH_BYTES_BEYOND_ACK + 1_000_000, `${bytes} bytes beyond the ack`);
    assert.deepEqual(first.map((value) => value.instanceId), first.map((_, index) => index), 'in order, each once');
    // The learner acks what it has: the rest follows, still in order.
    driver.step({ kind: 'learnValueAck', from: 2, instanceId: first.length });
    await turns(200);
    assert.deepEqual(taught().map((value) => value.instanceId), Array.from({ length: 330 }, (_, index) => index));
    assert.deepEqual(fatal, []);
  });

  test('a write failure after the group made progress halts it too', async () => {
    const store = new FailingStore(3);
    const { driver, halts } = await rig(store);
    assert.equal((await driver.propose(framed('a'), { timeoutMs: 60_000 })).instanceId, 0);
    const next = track(driver.propose(framed('b'), { timeoutMs: 60_000 }));
    await turns();
    expectError(next(), 'GROUP_HALTED');
    assert.equal(halts.length, 1);
    assert.equal(driver.status().halted?.code, 'GROUP_HALTED');
  });

  test('a proposal whose outcome was due in a Ready whose write failed is still settled', async () => {
    const store = new GatedStore();
    const { driver, clock } = await rig(store, [1, 2, 3]);
    const proposal = track(driver.propose(framed('a'), { timeoutMs: 100 }));
    await turns();
    assert.equal(store.puts.length, 1);
    // While the first write is in flight, the proposal times out and a peer's prepare arrives:
    // both land in the next Ready, whose write then fails.
    clock.ms = 200;
    driver.tick();
    driver.step(prepareMsg(2, 0, ballot(5, 2)));
    store.puts[0]?.resolve();
    await turns();
    assert.equal(store.puts.length, 2);
    store.puts[1]?.reject(new Error('disk on fire'));
    await turns();
    assert.equal(driver.halted?.code, 'GROUP_HALTED');
    const state = proposal();
    assert.ok(state !== 'pending', 'the caller must not wait forever');
    assert.ok(!state.ok);
    assert.ok(['TIMEOUT', 'GROUP_HALTED'].includes(state.error.code));
    assert.equal(state.error.mayBeChosen, true);
  });

  test('a proposal that cannot be decided in time rejects with TIMEOUT', async () => {
    const { driver, clock, sent } = await rig(new MemoryLogStore(), [1, 2, 3]);
    const proposal = track(driver.propose(framed('a'), { timeoutMs: 100 }));
    await turns();
    assert.ok(sent.some((entry) => entry.message.kind === 'prepare'));
    clock.ms = 100;
    driver.tick();
    await turns();
    const error = expectError(proposal(), 'TIMEOUT');
    assert.equal(error.mayBeChosen, true);
    assert.equal(error.retryable, false, 'retrying a value that may be chosen could apply it twice');
  });

  test('stop rejects queued and in-flight proposals with STOPPED', async () => {
    const { driver } = await rig(new MemoryLogStore(), [1, 2, 3]);
    const first = track(driver.propose(framed('a'), { timeoutMs: 60_000 }));
    const second = track(driver.propose(framed('b'), { timeoutMs: 60_000 }));
    await turns();
    driver.stop();
    await turns();
    assert.equal(expectError(first(), 'STOPPED').mayBeChosen, true);
    assert.equal(expectError(second(), 'STOPPED').mayBeChosen, false);
    await assert.rejects(driver.propose(framed('c'), { timeoutMs: 1000 }), /stopped/);
  });

  test('a failed execution rejects with EXECUTE_FAILED, is retried, and the group goes on', async () => {
    const { driver, machine, clock } = await rig(new MemoryLogStore());
    machine.failNext = 1;
    const first = track(driver.propose(framed('a'), { timeoutMs: 60_000 }));
    const second = track(driver.propose(framed('b'), { timeoutMs: 60_000 }));
    await turns();
    const error = expectError(first(), 'EXECUTE_FAILED');
    assert.equal(error.mayBeChosen, true);
    assert.match(String((error.cause as Error).message), /cannot execute a/);
    assert.equal(second(), 'pending');
    assert.equal(driver.nowInstanceId, 0, 'the failed instance is not skipped');
    clock.ms += 10;
    driver.tick();
    await turns();
    assert.deepEqual(machine.executed, ['a', 'b']);
    const state = second();
    assert.ok(state !== 'pending' && state.ok);
    assert.deepEqual(state.value, { instanceId: 1, batchIndex: 0, result: 'executed b' });
  });

  test('a proposal that loses its instance to another value is retried in the next one', async () => {
    const { driver, machine, clock, sent } = await rig(new MemoryLogStore(), [1, 2, 3]);
    const proposal = track(driver.propose(framed('mine'), { timeoutMs: 60_000 }));
    await turns();
    const theirs = ballot(5, 2);
    driver.step(prepareMsg(2, 0, theirs));
    driver.step(acceptMsg(2, 0, theirs, framed('theirs')));
    driver.step({ kind: 'chosen', from: 2, instanceId: 0, ballot: theirs, lastChecksum: 0 });
    await turns();
    assert.deepEqual(machine.executed, ['theirs']);
    assert.equal(proposal(), 'pending', 'a conflict is retried, not reported');
    const retry = sent.filter((entry) => entry.message.kind === 'prepare' && entry.message.instanceId === 1);
    assert.ok(retry.length > 0, 'the retry runs in instance 1');

    // Both peers promised 5.2: they reject, and after a short delay node 1 prepares above it.
    driver.step(prepareRejectMsg(2, 1, ballot(1, 1), 5));
    driver.step(prepareRejectMsg(3, 1, ballot(1, 1), 5));
    await turns();
    clock.ms += 40;
    driver.tick();
    await turns();
    const higher = sent.filter((entry) => entry.message.kind === 'prepare' && entry.message.instanceId === 1 &&
      entry.message.ballot.proposalId === 6);
    assert.ok(higher.length > 0, 'a prepare with ballot 6.1');
    driver.step(promiseMsg(2, 1, ballot(6, 1)));
    await turns();
    driver.step(acceptOkMsg(2, 1, ballot(6, 1)));
    await turns();
    const state = proposal();
    assert.ok(state !== 'pending' && state.ok, JSON.stringify(state));
    assert.deepEqual(state.value, { instanceId: 1, batchIndex: 0, result: 'executed mine' });
  });

  test('after losing three instances in a row a proposal rejects with CONFLICT', async () => {
    const { driver, machine } = await rig(new MemoryLogStore(), [1, 2, 3]);
    const proposal = track(driver.propose(framed('mine'), { timeoutMs: 60_000 }));
    await turns();
    const theirs = ballot(5, 2);
    driver.step(prepareMsg(2, 0, theirs));
    for (let instanceId = 0; instanceId < 3; instanceId++) {
      assert.equal(proposal(), 'pending');
      driver.step(acceptMsg(2, instanceId, theirs, framed(`theirs ${instanceId}`)));
      driver.step({ kind: 'chosen', from: 2, instanceId, ballot: theirs, lastChecksum: 0 });
      await turns();
    }
    assert.deepEqual(machine.executed, ['theirs 0', 'theirs 1', 'theirs 2']);
    const error = expectError(proposal(), 'CONFLICT');
    assert.equal(error.retryable, true);
    assert.equal(error.mayBeChosen, false);
  });

  test('a divergence found by the core halts the group with DIVERGED and rejects the pending proposal', async () => {
    const { driver, halts } = await rig(new MemoryLogStore(), [1, 2, 3]);
    const proposal = track(driver.propose(framed('a'), { timeoutMs: 60_000 }));
    await turns();
    // At instance 0 the chain before it is empty: a peer claiming otherwise has another history.
    driver.step(acceptMsg(2, 0, ballot(5, 2), framed('x'), 12345));
    await turns();
    assert.equal(halts[0]?.code, 'DIVERGED');
    assert.equal(driver.halted?.code, 'DIVERGED');
    assert.equal(expectError(proposal(), 'DIVERGED').mayBeChosen, true);
    await assert.rejects(driver.propose(framed('b'), { timeoutMs: 1000 }), (error: unknown) =>
      error instanceof PaxosError && error.code === 'DIVERGED');
  });
});

/** Complete the gated writes one by one until `done` holds. */
async function writeUntil(store: GatedStore, done: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !done(); i++) {
    store.puts.shift()?.resolve();
    await turns();
  }
  assert.ok(done(), 'the condition never held');
}

describe('GroupDriver batching', () => {
  test('proposals that queue while an instance is in flight share the next one, each with its batchIndex', async () => {
    const store = new GatedStore();
    const { driver, machine } = await rig(store, [1], 16, 16);
    const first = track(driver.propose(framed('a'), { timeoutMs: 60_000, context: 'ctx a' }));
    await turns();
    const rest = ['b', 'c', 'd'].map((value) => track(driver.propose(framed(value), { timeoutMs: 60_000, context: `ctx ${value}` })));
    while (store.puts.length > 0) {
      store.puts.shift()?.resolve();
      await turns();
    }
    const states = [first, ...rest].map((state) => state());
    assert.deepEqual(states.map((state) => state !== 'pending' && state.ok ? state.value : state), [
      { instanceId: 0, batchIndex: 0, result: 'executed a' },
      { instanceId: 1, batchIndex: 0, result: 'executed b' },
      { instanceId: 1, batchIndex: 1, result: 'executed c' },
      { instanceId: 1, batchIndex: 2, result: 'executed d' },
    ]);
    assert.deepEqual(machine.executed, ['a', 'b', 'c', 'd']);
    assert.deepEqual(machine.inputs.map((input) => [input.instanceId, input.context]),
      [[0, 'ctx a'], [1, 'ctx b'], [1, 'ctx c'], [1, 'ctx d']], 'each entry gets its own proposer context');
  });

  /** Four callers that each propose again as soon as they are answered: the instance each value got. */
  async function closedLoopInstances(deferFeed?: (feed: () => void) => void): Promise<number[][]> {
    const store = new GatedStore();
    const { driver } = await rig(store, [1], 16, 16, deferFeed);
    const instances: number[][] = [[], [], [], []];
    const caller = async (index: number): Promise<void> => {
      for (let round = 0; round < 3; round++) {
        const { instanceId } = await driver.propose(framed(`${index}.${round}`), { timeoutMs: 60_000 });
        instances[index]?.push(instanceId);
      }
    };
    const first = caller(0);
    await turns();
    const rest = [1, 2, 3].map((index) => caller(index));
    let finished = false;
    void Promise.all([first, ...rest]).then(() => { finished = true; });
    await writeUntil(store, () => finished);
    return instances;
  }

  test('callers answered together propose again into one shared instance, not one split by who came first', async () => {
    // Caller 0 goes alone; 1-3 queue meanwhile. From then on every answer sends all four back at
    // once: each instance must carry all four, so none waits an extra instance behind the others.
    assert.deepEqual(await closedLoopInstances(), [[0, 1, 2], [1, 2, 3], [1, 2, 3], [1, 2, 3]]);
    // Cutting the batch as soon as the callers are answered (before they can propose) splits it.
    // Callers 1-3 then always travel one instance behind caller 0, which goes alone.
    assert.deepEqual(await closedLoopInstances((feed) => feed()), [[0, 2, 4], [1, 3, 5], [1, 3, 5], [1, 3, 5]]);
  });

  test('a batch entry that fails is retried alone: the entries before it never run twice', async () => {
    const store = new GatedStore();
    const { driver, machine, clock } = await rig(store, [1], 16, 16);
    const execute = machine.execute.bind(machine);
    let failures = 0;
    machine.execute = (input) => {
      if (fromUtf8(input.value) === 'c' && failures++ === 0) throw new Error('c fails once');
      return execute(input);
    };
    const first = track(driver.propose(framed('a'), { timeoutMs: 60_000 }));
    await turns();
    const batch = ['b', 'c', 'd'].map((value) => track(driver.propose(framed(value), { timeoutMs: 60_000 })));
    await writeUntil(store, () => batch.every((state) => state() !== 'pending'));
    assert.ok(first() !== 'pending');
    const served = batch[0]?.();
    assert.ok(served !== undefined && served !== 'pending' && served.ok, 'b ran: its caller is told it was chosen');
    assert.deepEqual(served.value, { instanceId: 1, batchIndex: 0, result: 'executed b' });
    for (const state of batch.slice(1)) assert.equal(expectError(state(), 'EXECUTE_FAILED').mayBeChosen, true);
    assert.deepEqual(machine.executed, ['a', 'b']);
    clock.ms += 20;
    driver.tick();
    await turns();
    assert.deepEqual(machine.executed, ['a', 'b', 'c', 'd'], 'b ran once, c and d after the retry');
    assert.equal(driver.nowInstanceId, 2);
  });

  test('the batch limits cap how many proposals one instance carries', async () => {
    // Proposed in one turn to an idle group: they share instances from the first on.
    const store = new GatedStore();
    const { driver } = await rig(store, [1], 16, 2);
    const all = ['a', 'b', 'c', 'd', 'e'].map((value) => track(driver.propose(framed(value), { timeoutMs: 60_000 })));
    while (store.puts.length > 0 || all.some((state) => state() === 'pending')) {
      store.puts.shift()?.resolve();
      await turns();
    }
    assert.deepEqual(all.map((state) => {
      const settled = state();
      return settled !== 'pending' && settled.ok ? [settled.value.instanceId, settled.value.batchIndex] : settled;
    }), [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0]]);
  });

  test('a caller whose deadline passes while its batch is in flight gets TIMEOUT; the others go on', async () => {
    const store = new GatedStore();
    const { driver, clock } = await rig(store, [1], 16, 16);
    const first = track(driver.propose(framed('a'), { timeoutMs: 60_000 }));
    await turns();
    const short = track(driver.propose(framed('short'), { timeoutMs: 100 }));
    const long = track(driver.propose(framed('long'), { timeoutMs: 60_000 }));
    await writeUntil(store, () => driver.queueDepth.proposals === 0);
    assert.equal(long(), 'pending', 'the batch of short and long is in flight');
    clock.ms = 150;
    driver.tick();
    await turns();
    assert.equal(expectError(short(), 'TIMEOUT').mayBeChosen, true);
    assert.equal(long(), 'pending');
    await writeUntil(store, () => long() !== 'pending');
    const state = long();
    assert.ok(state !== 'pending' && state.ok);
    assert.deepEqual(state.value, { instanceId: 1, batchIndex: 1, result: 'executed long' });
    assert.ok(first() !== 'pending' && first() !== undefined);
  });

  test('an aborted proposal rejects with ABORTED: mayBeChosen false while queued, true once sent', async () => {
    const store = new GatedStore();
    const { driver, machine } = await rig(store, [1], 16, 16);
    const inFlight = new AbortController();
    const queued = new AbortController();
    const first = track(driver.propose(framed('a'), { timeoutMs: 60_000, signal: inFlight.signal }));
    await turns();
    const second = track(driver.propose(framed('b'), { timeoutMs: 60_000, signal: queued.signal }));
    inFlight.abort();
    queued.abort();
    await turns();
    assert.equal(expectError(first(), 'ABORTED').mayBeChosen, true);
    assert.equal(expectError(second(), 'ABORTED').mayBeChosen, false);
    await assert.rejects(driver.propose(framed('c'), { timeoutMs: 1000, signal: AbortSignal.abort() }),
      (error: unknown) => error instanceof PaxosError && error.code === 'ABORTED' && !error.mayBeChosen);
    const notASignal = { aborted: false } as unknown as AbortSignal;
    await assert.rejects(driver.propose(framed('bad signal'), { timeoutMs: 1000, signal: notASignal }),
      (error: unknown) => error instanceof PaxosError && error.code === 'BAD_OPTIONS');
    await writeUntil(store, () => store.puts.length === 0);
    assert.deepEqual(machine.executed, ['a'], 'the sent value is still chosen; the queued and refused ones never are');
  });
});

describe('GroupDriver: a catch-up run (Ready.executeAfter)', () => {
  /** Values 0..count-1 streamed by node 2, with their checksum chain. */
  function stream(count: number): PaxosMessage[] {
    const messages: PaxosMessage[] = [];
    let checksum = 0;
    for (let instanceId = 0; instanceId < count; instanceId++) {
      const value = framed(`v${instanceId}`);
      checksum = chainStep(fullCrc32, checksum, value);
      messages.push({ kind: 'learnValue', from: 2, instanceId, ballot: ballot(4, 2), value, checksum, needAck: true });
    }
    return messages;
  }

  test('executes the whole run in order once its write is durable, not before', async () => {
    const store = new GatedStore();
    const { driver, machine } = await rig(store, [1, 2, 3]);
    const [first, ...rest] = stream(10);
    for (const message of rest) driver.step(message);
    driver.step(first as PaxosMessage);
    await turns();
    assert.equal(store.puts.length, 1, 'one write for the run');
    assert.deepEqual(store.puts[0]?.records.map((record) => record.instanceId), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(machine.executed, [], 'nothing executes before the write is durable');
    store.puts.shift()?.resolve();
    await turns();
    assert.deepEqual(machine.executed, Array.from({ length: 10 }, (_, index) => `v${index}`));
    assert.equal(driver.nowInstanceId, 10);
    assert.equal(driver.counters.instancesExecuted, 10);
  });

  test('a failure ends the run there; the retry executes the rest once, in order', async () => {
    const store = new MemoryLogStore();
    const { driver, machine, clock } = await rig(store, [1, 2, 3]);
    let failed = false;
    machine.execute = ((execute) => (input: ExecuteInput): unknown => {
      if (input.instanceId === 4 && !failed) {
        failed = true;
        machine.failNext = 1;
      }
      return execute(input);
    })(machine.execute.bind(machine));
    const [first, ...rest] = stream(10);
    for (const message of rest) driver.step(message);
    driver.step(first as PaxosMessage);
    await turns();
    assert.deepEqual(machine.executed, ['v0', 'v1', 'v2', 'v3'], 'the run stops at the failed value');
    assert.equal(driver.nowInstanceId, 4);
    clock.ms += 1_000;
    driver.tick();
    await turns();
    assert.deepEqual(machine.executed, Array.from({ length: 10 }, (_, index) => `v${index}`));
    assert.equal(driver.nowInstanceId, 10);
  });

  test('a failed write executes nothing of the run', async () => {
    const store = new FailingStore(1);
    const { driver, machine, halts } = await rig(store, [1, 2, 3]);
    const [first, ...rest] = stream(5);
    for (const message of rest) driver.step(message);
    driver.step(first as PaxosMessage);
    await turns();
    assert.deepEqual(machine.executed, []);
    assert.equal(halts[0]?.code, 'GROUP_HALTED');
  });
});
