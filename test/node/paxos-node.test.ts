// PaxosNode in one process: real TCP on loopback, real files, the public API end to end.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EchoStateMachine } from '../../examples/echo/echo-state-machine.js';
import { PaxosError, PaxosNode, type MemberAddress, type PaxosNodeOptions, type StateMachine } from '../../src/index.js';
import { freePort } from '../support/local.js';

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

async function dataRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'paxos-node-test-'));
  roots.push(root);
  return root;
}


async function members(count: number): Promise<MemberAddress[]> {
  const list: MemberAddress[] = [];
  for (let id = 1; id <= count; id++) list.push({ id, host: '127.0.0.1', port: await freePort() });
  return list;
}

function rejectsWith(code: string, pattern?: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof PaxosError, `expected a PaxosError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (pattern !== undefined) assert.match(error.message, pattern);
    return true;
  };
}

describe('PaxosNode options', () => {
  const valid = { nodeId: 1, members: [{ id: 1, host: '127.0.0.1', port: 7000 }], dataDir: '/tmp/x' };
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['nodeId', { nodeId: 0 }, /option nodeId must be an integer in \[1, 4294967295\], got 0/],
    ['nodeId', { nodeId: 1.5 }, /option nodeId/],
    ['members', { members: [] }, /option members must be a non-empty array/],
    ['members', { nodeId: 2 }, /option members must include this node \(nodeId 2\)/],
    ['members[0].port', { members: [{ id: 1, host: 'h', port: 70_000 }] }, /option members\[0\]\.port/],
    ['members[1].id', { members: [{ id: 1, host: 'h', port: 1 }, { id: 1, host: 'h', port: 2 }] }, /appears twice/],
    ['dataDir', { dataDir: undefined }, /option dataDir is required/],
    ['groups', { groups: 0 }, /option groups must be an integer/],
    ['inlineWriteBytes', { inlineWriteBytes: -1 }, /option inlineWriteBytes must be an integer in \[0, 1048576\], got -1/],
    ['inlineWriteBytes', { inlineWriteBytes: 2 * 1024 * 1024 }, /option inlineWriteBytes/],
    ['sync', { sync: 'yes' }, /option sync must be true or false/],
    ['clusterId', { clusterId: '' }, /option clusterId/],
    ['maxFrameBytes', { maxFrameBytes: 1024 * 1024 }, /option maxFrameBytes must exceed/],
    // A value is logged as one record, and the file store reads records of at most 64 MiB.
    ['maxValueBytes', { maxValueBytes: 64 * 1024 * 1024 }, /option maxValueBytes must be an integer in \[1, 67043328\]/],
    ['timing', { timing: { prepareTimeoutStartMs: -1 } }, /option timing\.prepareTimeoutStartMs/],
    // Four budgets of values fit a learner's future window: beyond 256 MiB that is memory, not speed.
    ['timing', { timing: { teachBytesBeyondAck: 257 * 1024 * 1024 } },
      /option timing\.teachBytesBeyondAck must be an integer in \[1, 268435456\]/],
    ['stateMachines', { stateMachines: 'echo' }, /option stateMachines/],
    ['timers', { timers: {} }, /option timers must have a setTimer function/],
    ['onHalt', { onHalt: 1 }, /option onHalt must be a function/],
    ['onMembershipChange', { onMembershipChange: 'x' }, /option onMembershipChange must be a function/],
  ];
  for (const [field, change, message] of cases) {
    test(`an invalid ${field} is refused with BAD_OPTIONS naming it`, async () => {
      await assert.rejects(PaxosNode.start({ ...valid, ...change } as unknown as PaxosNodeOptions),
        rejectsWith('BAD_OPTIONS', message));
    });
  }
});

describe('PaxosNode over TCP', () => {
  test('three nodes, two groups: propose, results, batch indexes, instance values, metrics, restart', async () => {
    const root = await dataRoot();
    const cluster = await members(3);
    const echoes = cluster.map(() => new EchoStateMachine());
    const start = (index: number, echo: EchoStateMachine): Promise<PaxosNode> => PaxosNode.start({
      nodeId: index + 1, members: cluster, dataDir: join(root, `n${index + 1}`), groups: 2, stateMachines: [echo],
    });
    const nodes = await Promise.all(echoes.map((echo, index) => start(index, echo)));
    try {
      const first = await nodes[0]!.propose(0, 'hello');
      // Instance 0 holds the group identity node 1 (the lowest id) proposed at first start.
      assert.equal(first.instanceId, 1);
      const created = nodes[0]!.members(0);
      assert.ok(created.gid > 0 && created.version === 0, `the gid was created at first start: ${JSON.stringify(created)}`);
      assert.equal((await nodes[0]!.instanceValues(0, 0))[0]?.stateMachineId, 100_000_000);
      assert.equal(first.batchIndex, 0);
      assert.equal(Buffer.from(first.result as Uint8Array).toString(), 'hello', 'the proposer gets its result');
      const bytes = await nodes[1]!.propose(1, Uint8Array.of(1, 2, 3), { context: 'mine' });
      assert.deepEqual([...(bytes.result as Uint8Array)], [1, 2, 3]);

      // Many at once from one node share instances; each caller learns its own place.
      const burst = await Promise.all(Array.from({ length: 50 }, (_, i) => nodes[2]!.propose(0, `burst ${i}`)));
      const places = new Set(burst.map(({ instanceId, batchIndex }) => `${instanceId}/${batchIndex}`));
      assert.equal(places.size, 50, 'no two callers share a place');
      assert.ok(new Set(burst.map(({ instanceId }) => instanceId)).size < 50, 'some values shared an instance');
      for (const { instanceId, batchIndex } of burst.slice(0, 10)) {
        const values = await nodes[0]!.instanceValues(0, instanceId).catch(async () => {
          await waitFor(() => nodes[0]!.nowInstanceId(0) > instanceId);
          return await nodes[0]!.instanceValues(0, instanceId);
        });
        assert.equal(values[batchIndex]?.stateMachineId, 1);
      }
      const last = burst.at(-1)!;
      const lastValues = await nodes[2]!.instanceValues(0, last.instanceId);
      assert.equal(Buffer.from(lastValues[last.batchIndex]!.value).toString(), 'burst 49');

      await assert.rejects(nodes[0]!.instanceValues(0, 10_000), rejectsWith('INSTANCE_UNAVAILABLE', /not chosen here yet/));
      await assert.rejects(nodes[0]!.propose(2, 'x'), rejectsWith('INVALID_GROUP', /runs groups 0\.\.1/));
      assert.throws(() => nodes[0]!.nowInstanceId(-1), rejectsWith('INVALID_GROUP'));
      await assert.rejects(nodes[0]!.propose(0, 'x', { stateMachineId: 9 }), rejectsWith('BAD_OPTIONS', /no state machine with id 9/));
      await assert.rejects(nodes[0]!.propose(0, 'x', { timeoutMs: 0 }), rejectsWith('BAD_OPTIONS', /timeoutMs/));

      await waitFor(() => nodes.every((node) => node.nowInstanceId(0) === nodes[2]!.nowInstanceId(0)));
      const digests = echoes.map((echo) => echo.summary(0));
      assert.ok(digests.every((digest) => digest.digest === digests[0]!.digest && digest.executed === 51));
      const metrics = nodes[2]!.metrics();
      assert.equal(metrics.proposalsSucceeded, 50);
      assert.ok(metrics.groups[0]!.proposalsSent >= 50, 'every caller value was sent (a lost race sends it again)');
      assert.ok(metrics.groups[0]!.valuesProposed < metrics.groups[0]!.proposalsSent, 'values shared instances');
      assert.equal(metrics.groups.length, 2);
      assert.ok(metrics.transport !== undefined);
      assert.equal(nodes[0]!.minChosenInstanceId(0), 0);

      // Restart node 1 from its directory: the log is replayed into a fresh state machine.
      await nodes[0]!.stop();
      await assert.rejects(nodes[0]!.propose(0, 'late'), rejectsWith('STOPPED'));
      const replayed = new EchoStateMachine();
      nodes[0] = await start(0, replayed);
      // Start-up replays every instance below the newest logged one, and decides that one again live.
      assert.ok(replayed.summary(0).executed > 0);
      const after = await nodes[0].propose(0, 'after restart');
      assert.equal(after.instanceId, nodes[0].nowInstanceId(0) - 1);
      await waitFor(() => nodes.every((node) => node.nowInstanceId(0) === after.instanceId + 1));
      const final = [replayed, echoes[1]!, echoes[2]!].map((echo) => echo.summary(0));
      assert.equal(final[0]!.executed, 52);
      assert.ok(final.every((summary) => summary.digest === final[0]!.digest), 'the replay executed the same sequence');
    } finally {
      await Promise.all(nodes.map((node) => node.stop()));
    }
  });

  test('a full queue rejects with OVERLOADED, a large value with VALUE_TOO_LARGE, and stop rejects the rest', async () => {
    const [self] = await members(1);
    const node = await PaxosNode.start({
      nodeId: 1, members: [self!], dataDir: join(await dataRoot(), 'n1'), maxQueuedProposals: 20,
      maxValueBytes: 1024, stateMachines: [new EchoStateMachine()],
    });
    try {
      await assert.rejects(node.propose(0, 'x'.repeat(1021)), rejectsWith('VALUE_TOO_LARGE', /limit \(maxValueBytes\) is 1020/));
      // Once the group is idle (its master election done), a burst in one turn fills the queue:
      // exactly maxQueuedProposals wait, the first of them until the end of the turn.
      await node.propose(0, 'settled');
      const outcomes = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => node.propose(0, `v${i}`)));
      const overloaded = outcomes.filter((outcome) => outcome.status === 'rejected' &&
        outcome.reason instanceof PaxosError && outcome.reason.code === 'OVERLOADED');
      const chosen = outcomes.filter((outcome) => outcome.status === 'fulfilled');
      assert.equal(chosen.length, 20, `${overloaded.length} overloaded, ${chosen.length} chosen`);
      assert.equal(overloaded.length + chosen.length, 200);
      assert.equal((overloaded[0] as PromiseRejectedResult).reason.retryable, true);

      node.setLogSync(false);
      await node.propose(0, 'unsynced');
      node.setLogSync(true);
      assert.throws(() => node.setLogSync('no' as unknown as boolean), rejectsWith('BAD_OPTIONS'));

      const pending = Array.from({ length: 30 }, (_, i) => node.propose(0, `pending ${i}`));
      await node.stop();
      const settled = await Promise.allSettled(pending);
      for (const outcome of settled) {
        if (outcome.status === 'rejected') assert.ok(['STOPPED', 'OVERLOADED'].includes((outcome.reason as PaxosError).code));
      }
      await node.stop();
    } finally {
      await node.stop();
    }
  });

  test('several state machines: a value names its state machine; one added later receives what follows', async () => {
    const [self] = await members(1);
    const seen: string[] = [];
    const machine = (id: number): StateMachine => ({
      id, execute: ({ value }) => { seen.push(`${id}:${Buffer.from(value)}`); return id; },
    });
    const node = await PaxosNode.start({
      nodeId: 1, members: [self!], dataDir: join(await dataRoot(), 'n1'), groups: 2, stateMachines: [machine(1), machine(2)],
    });
    try {
      await assert.rejects(node.propose(0, 'which?'), rejectsWith('BAD_OPTIONS', /has 2 state machines; name one/));
      assert.equal((await node.propose(0, 'a', { stateMachineId: 2 })).result, 2);
      node.addStateMachine(1, machine(3));
      assert.equal((await node.propose(1, 'b', { stateMachineId: 3 })).result, 3);
      assert.throws(() => node.addStateMachine(machine(3)), /already registered/);
      assert.deepEqual(seen, ['2:a', '3:b']);
    } finally {
      await node.stop();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
