// PaxosNode wires its own file store to its TCP transport: before the store blocks the loop on an
// inline durable write, the transport sends what it has queued (TcpTransport.flushNow, whose only
// caller is that hook). And inlineWriteBytes reaches the store: with 0 no write is inline, so the
// hook never runs. Three nodes in one process, real TCP on loopback, real files.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EchoStateMachine } from '../../examples/echo/echo-state-machine.js';
import { PaxosNode, type MemberAddress } from '../../src/index.js';
import { TcpTransport } from '../../src/io/tcp-transport.js';
import { freePort } from '../support/local.js';

const roots: string[] = [];
after(async () => {
  for (const root of roots) await rm(root, { recursive: true, force: true });
});

/** Counts TcpTransport.flushNow calls (each still does its work) while `body` runs. */
async function countingFlushNow(body: () => Promise<void>): Promise<number> {
  const original = Object.getOwnPropertyDescriptor(TcpTransport.prototype, 'flushNow');
  assert.ok(original !== undefined && typeof original.value === 'function');
  const flushNow = original.value as (this: TcpTransport) => void;
  let calls = 0;
  TcpTransport.prototype.flushNow = function counted(this: TcpTransport): void {
    calls++;
    flushNow.call(this);
  };
  try {
    await body();
  } finally {
    Object.defineProperty(TcpTransport.prototype, 'flushNow', original);
  }
  return calls;
}

async function proposeOnCluster(inlineWriteBytes: number | undefined): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'inline-write-wiring-'));
  roots.push(root);
  const members: MemberAddress[] = [];
  for (let id = 1; id <= 3; id++) members.push({ id, host: '127.0.0.1', port: await freePort() });
  const nodes = await Promise.all(members.map(({ id }) => PaxosNode.start({
    nodeId: id, members, dataDir: join(root, `n${id}`), stateMachines: [new EchoStateMachine()],
    ...(inlineWriteBytes === undefined ? {} : { inlineWriteBytes }),
  })));
  try {
    for (let i = 0; i < 5; i++) {
      const { result } = await (nodes[0] as PaxosNode).propose(0, `value ${i}`);
      assert.equal(Buffer.from(result as Uint8Array).toString(), `value ${i}`);
    }
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
  }
}

test('with the default settings the node sends its queued messages before each inline write', async () => {
  // Every instance makes small durable writes on each node; the first of a store's writes is always
  // inline (no slowness measured yet), so even a loaded machine's disk makes some.
  const calls = await countingFlushNow(() => proposeOnCluster(undefined));
  assert.ok(calls > 0, 'the store\'s hook reaches TcpTransport.flushNow');
});

test('inlineWriteBytes 0 reaches the store: no write is inline, so the hook never runs', async () => {
  const calls = await countingFlushNow(() => proposeOnCluster(0));
  assert.equal(calls, 0);
});
