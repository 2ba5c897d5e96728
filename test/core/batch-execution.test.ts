// A catch-up's run of values written ahead executes in one Ready (Ready.executeAfter): in order,
// each once, nothing before the Ready that makes it durable, and a failure stops the run there.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chainStep } from '../../src/core/group-context.js';
import type { GroupCore } from '../../src/core/group-core.js';
import type { AcceptMessage, LearnValueMessage } from '../../src/core/messages.js';
import type { ChosenValue, Ready } from '../../src/core/ready.js';
import { CoreHarness } from '../../src/testing/core-harness.js';
import { fullCrc32 } from '../../src/testing/crc32.js';
import { utf8 } from '../../src/util/bytes.js';
import { ballot, drain, makeCore, ofKind, stabilizeWithout, text } from './fixtures.js';

const VALUES = 12;
const values = Array.from({ length: VALUES }, (_, index) => utf8(`value-${index}`));
/** The checksum chain of `values` from instance 0. */
const chain: number[] = [];
values.forEach((value, index) => chain.push(chainStep(fullCrc32, index === 0 ? 0 : chain[index - 1] as number, value)));

function learnValue(instanceId: number, from = 1, checksum = chain[instanceId] as number): LearnValueMessage {
  return {
    kind: 'learnValue', from, instanceId, ballot: ballot(5, 1), value: values[instanceId] as Uint8Array, checksum,
    needAck: true,
  };
}

/** Node 3, at instance 0, learning from node 1. */
function learner(): GroupCore {
  return makeCore({ nodeId: 3 });
}

function executions(ready: Ready): ChosenValue[] {
  return ready.execute === null ? [...ready.executeAfter] : [ready.execute, ...ready.executeAfter];
}

/** Report each value as executed, in order, as a driver does; returns their instances. */
function executeAll(core: GroupCore, ready: Ready): number[] {
  const done: number[] = [];
  for (const chosen of executions(ready)) {
    core.onExecuted(chosen.instanceId, { ok: true, result: undefined });
    done.push(chosen.instanceId);
  }
  return done;
}

/** An accept from node 2 for `instanceId` (a live proposal's, while node 3 catches up). */
function acceptFor(instanceId: number): AcceptMessage {
  return { kind: 'accept', from: 2, instanceId, ballot: ballot(9, 2), value: utf8('live'), lastChecksum: 0,
    previousBallot: ballot(5, 1) };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, index) => from + index);
}

describe('Batch execution of values written ahead', () => {
  test('one Ready writes the run and executes it in order, after its records', () => {
    const core = learner();
    for (let instanceId = 1; instanceId < 10; instanceId++) core.step(learnValue(instanceId));
    assert.equal(drain(core).execute, null, 'nothing executes before the current instance is learned');
    core.step(learnValue(0));
    const ready = drain(core);
    assert.deepEqual(ready.records.map((record) => record.instanceId), range(0, 10));
    assert.equal(ready.mustSync, true);
    const run = executions(ready);
    assert.deepEqual(run.map((chosen) => chosen.instanceId), range(0, 10));
    assert.deepEqual(run.map((chosen) => chosen.checksum), chain.slice(0, 10), 'each value carries its verified chain');
    assert.deepEqual(run.map((chosen) => text(chosen.value)), range(0, 10).map((index) => `value-${index}`));
    assert.ok(run.every((chosen) => chosen.proposalToken === null));
    assert.deepEqual(executeAll(core, ready), range(0, 10));
    assert.equal(core.nowInstanceId, 10);
    const after = drain(core);
    assert.deepEqual(executions(after), [], 'nothing is executed twice');
    assert.equal(after.records.length, 0, 'and nothing is written again');
  });

  test('duplicates of values handed over or executed are never executed again', () => {
    const core = learner();
    for (let instanceId = 1; instanceId < 6; instanceId++) core.step(learnValue(instanceId));
    core.step(learnValue(0));
    const ready = drain(core);
    // The stream repeats itself (a second session, a duplicated message) while the run executes.
    core.onExecuted(0, { ok: true, result: undefined });
    core.onExecuted(1, { ok: true, result: undefined });
    for (const instanceId of [0, 1, 2, 3, 4, 5]) core.step(learnValue(instanceId, 2));
    const meanwhile = drain(core);
    assert.deepEqual(executions(meanwhile), []);
    assert.deepEqual(meanwhile.records, []);
    for (const chosen of ready.executeAfter.slice(1)) {
      core.onExecuted(chosen.instanceId, { ok: true, result: undefined });
    }
    assert.equal(core.nowInstanceId, 6);
    core.step(learnValue(3, 2));
    assert.deepEqual(executions(drain(core)), []);
  });

  test('a gap ends the run; values that fill it continue it in the next Ready, in order', () => {
    const core = learner();
    for (const instanceId of [1, 2, 3, 4, 6, 7, 8, 9]) core.step(learnValue(instanceId));
    core.step(learnValue(0));
    const first = drain(core);
    assert.deepEqual(first.records.map((record) => record.instanceId), range(0, 5));
    assert.deepEqual(executions(first).map((chosen) => chosen.instanceId), range(0, 5));
    // 5 arrives while 0..4 execute: it and what waited behind it are written and handed over.
    core.onExecuted(0, { ok: true, result: undefined });
    core.step(learnValue(5));
    const second = drain(core);
    assert.deepEqual(second.records.map((record) => record.instanceId), range(5, 10));
    assert.equal(second.execute, null, 'the instance executing now is not handed over twice');
    assert.deepEqual(second.executeAfter.map((chosen) => chosen.instanceId), range(5, 10));
    for (let instanceId = 1; instanceId < 5; instanceId++) core.onExecuted(instanceId, { ok: true, result: undefined });
    assert.deepEqual(executeAll(core, second), range(5, 10));
    assert.equal(core.nowInstanceId, 10);
  });

  test('a value whose chain disagrees is not written ahead nor handed over; reaching it halts the group', () => {
    const core = learner();
    core.step(learnValue(1));
    core.step(learnValue(2, 1, 12345));
    core.step(learnValue(0));
    const ready = drain(core);
    assert.deepEqual(executions(ready).map((chosen) => chosen.instanceId), [0, 1]);
    executeAll(core, ready);
    assert.equal(core.nowInstanceId, 2);
    assert.equal(core.isHalted, true, 'the bad value of instance 2 is judged when the node reaches it');
    assert.equal(drain(core).halted?.code, 'DIVERGED');
  });

  test('a value handed over is still compared with what another peer sends for it; a different chain halts', () => {
    const core = learner();
    for (let instanceId = 1; instanceId < 6; instanceId++) core.step(learnValue(instanceId));
    // Node 2 streams instance 3 too, with a chain that disagrees: it is kept, not written ahead.
    core.step(learnValue(3, 2, 12345));
    core.step(learnValue(0));
    const ready = drain(core);
    assert.deepEqual(executions(ready).map((chosen) => chosen.instanceId), range(0, 6), 'node 1\'s run is handed over');
    const done: number[] = [];
    for (const chosen of executions(ready)) {
      if (core.isHalted) break;
      core.onExecuted(chosen.instanceId, { ok: true, result: undefined });
      done.push(chosen.instanceId);
    }
    assert.equal(core.isHalted, true, 'reaching instance 3 replays node 2\'s value, whose chain differs');
    assert.deepEqual(done, [0, 1, 2], 'nothing runs after the halt');
    const halted = drain(core).halted;
    assert.equal(halted?.code, 'DIVERGED');
    assert.match(halted?.message ?? '', /instance 3: value from node 2/);
  });

  test('a failed execution stops the run; the retry resumes there and nothing runs twice or out of order', () => {
    const core = learner();
    for (let instanceId = 1; instanceId < 8; instanceId++) core.step(learnValue(instanceId));
    core.step(learnValue(0));
    const ready = drain(core);
    assert.deepEqual(executions(ready).map((chosen) => chosen.instanceId), range(0, 8));
    core.onExecuted(0, { ok: true, result: undefined });
    core.onExecuted(1, { ok: true, result: undefined });
    // Values arriving before the failure were handed over for the next Ready: cancelled with it.
    core.step(learnValue(8));
    core.onExecuted(2, { ok: false, error: new Error('not now') });
    assert.equal(core.nowInstanceId, 2);
    const afterFailure = drain(core);
    assert.deepEqual(executions(afterFailure), [], 'nothing after the failed instance is handed over');
    assert.deepEqual(afterFailure.records.map((record) => record.instanceId), [8], 'what arrived is still written');
    assert.throws(() => core.onExecuted(3, { ok: true, result: undefined }), /invariant|execution report/);
  });

  test('after a failure the retry hands the rest over again, from the failed instance on', () => {
    const core = learner();
    for (let instanceId = 1; instanceId < 8; instanceId++) core.step(learnValue(instanceId));
    core.step(learnValue(0));
    drain(core);
    core.onExecuted(0, { ok: true, result: undefined });
    core.onExecuted(1, { ok: false, error: new Error('not now') });
    drain(core);
    const retryAt = core.nextTimerAt() ?? NaN;
    core.tick(retryAt);
    const retry = drain(core);
    assert.deepEqual(executions(retry).map((chosen) => chosen.instanceId), range(1, 8));
    assert.deepEqual(retry.records, [], 'the records were durable already');
    assert.deepEqual(executeAll(core, retry), range(1, 8));
    assert.equal(core.nowInstanceId, 8);
  });

  test('acks follow execution and leave after the records they cover are durable', () => {
    const core = makeCore({ nodeId: 3, timing: { learnAckLead: 4 } });
    for (let instanceId = 1; instanceId < VALUES; instanceId++) core.step(learnValue(instanceId));
    core.step(learnValue(0));
    // Ready by Ready, as a driver does: write the records, send (an ack marked afterPersist leaves
    // once this Ready's records are written), then execute the run.
    const durable = new Set<number>();
    const acked: number[] = [];
    for (let round = 0; round < 20 && core.hasReady(); round++) {
      const executedBefore = core.nowInstanceId;
      const ready = drain(core);
      for (const ack of ofKind(ready.messages, 'learnValueAck')) {
        assert.equal(ack.to, 1);
        const written = new Set(durable);
        if (ack.afterPersist) for (const record of ready.records) written.add(record.instanceId);
        for (const instanceId of range(0, ack.message.instanceId)) {
          assert.ok(written.has(instanceId), `ack ${ack.message.instanceId} leaves before #${instanceId} is durable`);
        }
        // Acks follow execution: each was made once the instance two below it was executed.
        assert.ok(ack.message.instanceId <= executedBefore + 2, `ack ${ack.message.instanceId} after ${executedBefore}`);
        acked.push(ack.message.instanceId);
      }
      for (const record of ready.records) durable.add(record.instanceId);
      executeAll(core, ready);
    }
    assert.equal(core.nowInstanceId, VALUES);
    assert.ok(acked.length >= 2, `acks ${acked.join(', ')}`);
  });

  test('values written ahead whose messages the future window dropped still execute, in order, once', () => {
    const core = makeCore({ nodeId: 3, timing: { learnAckLead: 2 } });
    const large = (instanceId: number): LearnValueMessage => ({
      ...learnValue(instanceId), value: new Uint8Array(8 * 1024 * 1024).fill(instanceId), checksum: 0,
    });
    for (let instanceId = 1; instanceId < 6; instanceId++) core.step(large(instanceId));
    core.step(large(0));
    const first = drain(core);
    assert.deepEqual(first.records.map((record) => record.instanceId), range(0, 6), 'all written ahead');
    assert.deepEqual(executions(first).map((chosen) => chosen.instanceId), [0, 1], 'one 8 MiB value after 0 (runs of 4 MiB)');
    // An accept of almost 40 MiB for instance 1 pushes the window past its 64 MiB: the farthest
    // values go, 5 and 4, and 4 starts a run (runs of 4 MiB: the one learned and one handed over).
    core.step({ ...acceptFor(1), value: new Uint8Array(40 * 1024 * 1024 - 100) });
    const executed = [...executeAll(core, first)];
    for (let round = 0; round < 10 && core.hasReady(); round++) executed.push(...executeAll(core, drain(core)));
    assert.deepEqual(executed, range(0, 6), 'learned from their durable records on reaching them');
    assert.equal(core.nowInstanceId, 6);
  });

  test('a run is handed over learnAckLead values at a time, so its acks leave between runs', () => {
    const core = makeCore({ nodeId: 3, timing: { learnAckLead: 4 } });
    for (let instanceId = 1; instanceId < VALUES; instanceId++) core.step(learnValue(instanceId));
    core.step(learnValue(0));
    const runs: number[][] = [];
    const acksPerReady: number[][] = [];
    for (let round = 0; round < 20 && core.hasReady(); round++) {
      const ready = drain(core);
      acksPerReady.push(ofKind(ready.messages, 'learnValueAck').map((ack) => ack.message.instanceId));
      runs.push(executeAll(core, ready));
    }
    assert.deepEqual(runs.filter((run) => run.length > 0), [range(0, 5), range(5, 10), range(10, 12)],
      'the one executing, then at most four handed over after it');
    assert.ok(acksPerReady.slice(1).some((acks) => acks.length > 0), 'acks made during a run leave with the next Ready');
    assert.equal(core.nowInstanceId, VALUES);
  });
});

describe('Batch execution between cores', () => {

  function missed(count: number, seed: number): { harness: CoreHarness; values: string[] } {
    const harness = new CoreHarness({ nodes: 3, seed });
    const proposed = range(0, count).map((index) => `v${index}`);
    for (const value of proposed) {
      harness.propose(1, value);
      stabilizeWithout(harness, 3);
    }
    return { harness, values: proposed };
  }

  test('a teacher dying mid-stream: the learner finishes from the other peer, each value executed once', () => {
    const { harness, values: proposed } = missed(80, 21);
    const learnerNode = harness.node(3);
    harness.tick((learnerNode.core.nextTimerAt() ?? NaN) - harness.nowMs);
    harness.deliver({ kind: 'askForLearn', from: 3 });
    harness.deliver({ kind: 'sendNowInstanceId', to: 3 });
    const teacher = harness.pending({ kind: 'confirmAskForLearn', from: 3 })[0]?.to as number;
    harness.deliver({ kind: 'confirmAskForLearn' });
    // Part of the stream arrives, then the teacher dies.
    for (let round = 0; round < 3; round++) {
      harness.process();
      harness.deliver({ to: 3 }, 10);
    }
    harness.crash(teacher);
    harness.process(3);
    const before = learnerNode.core.nowInstanceId;
    assert.ok(before > 0 && before < 80, `part of the stream was learned (${before})`);
    harness.runUntil(() => learnerNode.core.nowInstanceId >= 80, 60_000, 100);
    const executed = learnerNode.executed.map((chosen) => chosen.instanceId);
    assert.deepEqual(executed, range(0, executed.length), 'in order, each once');
    assert.deepEqual(harness.executedValues(3).slice(0, 80), proposed);
  });

  test('a restart in the middle of an executing run resumes from the durable records', () => {
    const { harness, values: proposed } = missed(40, 23);
    const learnerNode = harness.node(3);
    harness.tick((learnerNode.core.nextTimerAt() ?? NaN) - harness.nowMs);
    harness.deliver({ kind: 'askForLearn', from: 3 });
    harness.deliver({ kind: 'sendNowInstanceId', to: 3 });
    harness.deliver({ kind: 'confirmAskForLearn' });
    harness.process();
    // The stream reaches node 3 without its Readies being handled; one is then handled by hand:
    // written, part of its run executed, and the node crashes.
    assert.ok(harness.stepOnly({ kind: 'learnValue', to: 3 }) >= 4);
    assert.ok(learnerNode.core.hasReady());
    const ready = learnerNode.core.ready();
    for (const record of ready.records) learnerNode.durable.set(record.instanceId, record);
    const run = executions(ready);
    assert.ok(run.length >= 4, `a run of ${run.length}`);
    for (const chosen of run.slice(0, 2)) {
      learnerNode.core.onExecuted(chosen.instanceId, { ok: true, result: undefined });
    }
    harness.crash(3);
    harness.restart(3);
    harness.runUntil(() => learnerNode.core.nowInstanceId >= 40, 60_000, 100);
    assert.deepEqual(harness.executedValues(3).slice(0, 40), proposed);
    for (const id of range(0, 40)) {
      assert.equal(learnerNode.durable.get(id)?.checksum, harness.node(1).durable.get(id)?.checksum, `chain at ${id}`);
    }
  });
});
