/**
 * Embedding the library in about twenty lines: three nodes of one cluster, here in one process
 * for brevity (in practice each runs on its own machine with its own nodeId).
 *   node dist/examples/echo/embed.js
 * In your project, import from 'multipaxos' instead of the relative path.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PaxosNode } from '../../src/index.js';
import { EchoStateMachine } from './echo-state-machine.js';

const members = [1, 2, 3].map((id) => ({ id, host: '127.0.0.1', port: 17_300 + id }));
const dataRoot = mkdtempSync(join(tmpdir(), 'multipaxos-embed-'));
const nodes = await Promise.all(members.map(({ id }) => PaxosNode.start({
  nodeId: id, members, dataDir: join(dataRoot, `node-${id}`),
  stateMachines: [new EchoStateMachine(({ value }) => console.log(`node ${id} executed "${Buffer.from(value)}"`))],
})));
const { instanceId, result } = await nodes[0]!.propose(0, 'hello, paxos');
console.log(`chosen at instance ${instanceId}; node 1 got back "${Buffer.from(result as Uint8Array)}"`);
while (nodes.some((node) => node.nowInstanceId(0) <= instanceId)) await sleep(10); // the others learn it
await Promise.all(nodes.map((node) => node.stop()));
rmSync(dataRoot, { recursive: true, force: true });
