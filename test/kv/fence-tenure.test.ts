// A fence counts only in the tenure it was proposed in. These scenarios (found in review) drive
// KvService over a scripted node, so each proposal is chosen exactly when and where the test says:
// a fence from an earlier tenure that resolves late, or that is still pending when the node becomes
// master again, must never let a linearizable read miss a write another master acknowledged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { encodeKvCommand, type Fence, type KvCommand } from '../../src/kv/kv-command.js';
import { KvError } from '../../src/kv/kv-error.js';
import { KvService } from '../../src/kv/kv-service.js';
import { KvStateMachine, type KvOutcome } from '../../src/kv/kv-state-machine.js';
import type { MasterInfo } from '../../src/runtime/master/master-state-machine.js';

const A = 1;
const C = 3;

interface Proposal {
  readonly value: Uint8Array;
  resolve(result: { instanceId: number; batchIndex: number; result: KvOutcome }): void;
}

/** The node under test: it proposes into a list the test settles, and is master when the test says. */
class ScriptedNode {
  info: MasterInfo | undefined;
  readonly proposals: Proposal[] = [];
  constructor(readonly nodeId: number) {}
  master(): MasterInfo | undefined { return this.info; }
  isMaster(): boolean { return this.info?.nodeId === this.nodeId; }
  propose(_group: number, value: Uint8Array): Promise<unknown> {
    return new Promise((resolve) => this.proposals.push({ value, resolve }));
  }
  members(): { members: [] } { return { members: [] }; }
  nowInstanceId(): number { return 0; }
  minChosenInstanceId(): number { return 0; }
  status(): { halted: null } { return { halted: null }; }
  storageFailure(): undefined { return undefined; }
  async stop(): Promise<void> {}
}

interface Internals {
  onMasterChange(group: number, master: MasterInfo | undefined): void;
  fenceWatch: ReturnType<typeof setInterval>;
}

function scripted(nodeId: number, machine: KvStateMachine): { node: ScriptedNode; service: KvService } {
  const node = new ScriptedNode(nodeId);
  const Service = KvService as unknown as new (...args: unknown[]) => KvService;
  const service = new Service(node, machine, 1, { httpEndpoint: `http://node-${nodeId}` });
  clearInterval((service as unknown as Internals).fenceWatch);
  return { node, service };
}

function becomes(node: ScriptedNode, service: KvService, master: number, version: number): void {
  node.info = { nodeId: master, version, leaseExpiresAt: Infinity };
  (service as unknown as Internals).onMasterChange(0, node.info);
}

function run(machine: KvStateMachine, instanceId: number, command: KvCommand): KvOutcome {
  return machine.execute({ groupIndex: 0, instanceId, value: encodeKvCommand(command), context: undefined });
}

const fence = (nodeId: number, masterVersion: number): Fence => ({ nodeId, masterVersion });
const put = (value: string, by: Fence): KvCommand => ({
  kind: 'put', key: 'k', value: Buffer.from(value), expectedVersion: undefined, fence: by,
});

/** Both replicas start with one write, "old", under an earlier master's fence. */
function replicas(): { a: KvStateMachine; c: KvStateMachine } {
  const a = new KvStateMachine({ groups: 1 });
  const c = new KvStateMachine({ groups: 1 });
  for (const machine of [a, c]) {
    run(machine, 1, { kind: 'fence', fence: fence(9, 0), httpAddress: 'http://node-9' });
    run(machine, 2, put('old', fence(9, 0)));
  }
  return { a, c };
}

test('a fence of an earlier tenure that resolves late is not used: the next tenure fences anew', async () => {
  const { a, c } = replicas();
  const { node, service } = scripted(A, a);
  becomes(node, service, A, 10); // A proposes FA(10); it is slow
  await tick();
  assert.equal(node.proposals.length, 1);
  becomes(node, service, C, 20); // C wins; A's tenure ends
  // FA(10) is chosen late, at 25 (10 > 0: the state machines take it), and A's proposal resolves.
  const late = run(a, 25, { kind: 'fence', fence: fence(A, 10), httpAddress: 'http://node-1' });
  run(c, 25, { kind: 'fence', fence: fence(A, 10), httpAddress: 'http://node-1' });
  node.proposals[0]?.resolve({ instanceId: 25, batchIndex: 0, result: late });
  await tick();
  becomes(node, service, A, 30); // A wins again
  await tick();
  assert.equal(node.proposals.length, 2, 'the new tenure proposes its own fence');
  assert.equal(service.status()[0]?.serving, false, 'not serving before that fence is chosen');
  // Meanwhile C's own fence FC(20), still being retried, lands at 35 and C acknowledges W at 40.
  assert.equal(run(c, 35, { kind: 'fence', fence: fence(C, 20), httpAddress: 'http://node-3' }).ok, true);
  assert.equal(run(c, 40, put('new', fence(C, 20))).ok, true);
  // A must not read before its own fence is chosen, and that fence comes after C's write.
  const read = service.get('k', { timeoutMs: 50 });
  await assert.rejects(read, (error: unknown) => error instanceof KvError && error.code === 'TIMEOUT' &&
    !error.mayHaveBeenApplied);
  run(a, 35, { kind: 'fence', fence: fence(C, 20), httpAddress: 'http://node-3' });
  run(a, 40, put('new', fence(C, 20)));
  const own = run(a, 45, { kind: 'fence', fence: fence(A, 30), httpAddress: 'http://node-1' });
  assert.equal(own.ok, true);
  node.proposals[1]?.resolve({ instanceId: 45, batchIndex: 0, result: own });
  await tick();
  assert.equal(service.status()[0]?.serving, true);
  const after = await service.get('k');
  assert.equal(Buffer.from(after.value as Uint8Array).toString(), 'new');
  assert.equal(after.version, 2);
});

test('a fence still pending from an earlier tenure is not reused by the next one', async () => {
  const { a, c } = replicas();
  const { node, service } = scripted(C, c);
  becomes(node, service, C, 20); // C proposes FC(20); slow
  await tick();
  becomes(node, service, A, 30); // A wins
  becomes(node, service, C, 50); // A's lease lapses; C wins again
  await tick();
  assert.equal(node.proposals.length, 2, 'FC(20) and a new FC(50)');
  // The old FC(20) is chosen at 55 and resolves: it must not make C serve its new tenure.
  const old = run(c, 55, { kind: 'fence', fence: fence(C, 20), httpAddress: 'http://node-3' });
  run(a, 55, { kind: 'fence', fence: fence(C, 20), httpAddress: 'http://node-3' });
  node.proposals[0]?.resolve({ instanceId: 55, batchIndex: 0, result: old });
  await tick();
  assert.equal(service.status()[0]?.serving, false);
  // A's late FA(30) lands at 60 (30 > 20) and A acknowledges W at 65; C has not executed them yet.
  assert.equal(run(a, 60, { kind: 'fence', fence: fence(A, 30), httpAddress: 'http://node-1' }).ok, true);
  assert.equal(run(a, 65, put('new', fence(A, 30))).ok, true);
  await assert.rejects(service.get('k', { timeoutMs: 50 }), (error: unknown) =>
    error instanceof KvError && error.code === 'TIMEOUT');
  // C executes 60 and 65, then its own FC(50) at 70: now it serves, and sees W.
  run(c, 60, { kind: 'fence', fence: fence(A, 30), httpAddress: 'http://node-1' });
  run(c, 65, put('new', fence(A, 30)));
  const own = run(c, 70, { kind: 'fence', fence: fence(C, 50), httpAddress: 'http://node-3' });
  node.proposals[1]?.resolve({ instanceId: 70, batchIndex: 0, result: own });
  await tick();
  const read = await service.get('k');
  assert.equal(Buffer.from(read.value as Uint8Array).toString(), 'new');
});

test('a waiter gives up at its own deadline without failing the fence other callers wait for', async () => {
  const { a } = replicas();
  const { node, service } = scripted(A, a);
  becomes(node, service, A, 10);
  await tick();
  const impatient = service.get('k', { timeoutMs: 20 });
  const patient = service.get('k', { timeoutMs: 5_000 });
  await assert.rejects(impatient, (error: unknown) => error instanceof KvError && error.code === 'TIMEOUT');
  const chosen = run(a, 11, { kind: 'fence', fence: fence(A, 10), httpAddress: 'http://node-1' });
  node.proposals[0]?.resolve({ instanceId: 11, batchIndex: 0, result: chosen });
  assert.equal(Buffer.from((await patient).value as Uint8Array).toString(), 'old');
});
