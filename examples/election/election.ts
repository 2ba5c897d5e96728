/**
 * Master election (PhxPaxos's PhxElection sample): three nodes elect a master with a 3-second
 * lease and print, every second, whom each one sees as master. Halfway, the master drops its
 * lease and another takes over. Here in one process for brevity:
 *   node dist/examples/election/election.js
 * In your project, import from 'multipaxos' instead of the relative path.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PaxosNode } from '../../src/index.js';

const members = [1, 2, 3].map((id) => ({ id, host: '127.0.0.1', port: 17_400 + id }));
const dataRoot = mkdtempSync(join(tmpdir(), 'multipaxos-election-'));
const nodes = await Promise.all(members.map(({ id }) => PaxosNode.start({
  nodeId: id, members, dataDir: join(dataRoot, `node-${id}`),
  master: { groups: 'all', leaseMs: 3_000 },
  onMasterChange: (group, master) => console.log(`  node ${id}: master of group ${group} is now ` +
    `${master === undefined ? 'nobody' : `node ${master.nodeId} (version ${master.version})`}`),
})));

for (let second = 1; second <= 10; second++) {
  await sleep(1_000);
  const views = nodes.map((node) => `node ${node.nodeId} sees ${node.master(0)?.nodeId ?? 'no master'}`);
  console.log(`${second}s: ${views.join(', ')}`);
  if (second === 5) {
    const master = nodes.find((node) => node.isMaster(0));
    if (master !== undefined) {
      console.log(`node ${master.nodeId} drops its lease`);
      master.dropMaster(0);
    }
  }
}
await Promise.all(nodes.map((node) => node.stop()));
rmSync(dataRoot, { recursive: true, force: true });
