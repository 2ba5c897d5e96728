// Membership changes between real processes: a three-node cluster grows to four (the new node
// starts from an empty disk and catches up) and shrinks back to three while proposals continue;
// no acknowledged proposal is lost and every node ends with the same log.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { NodeCluster, type ControlReply } from '../../src/testing/process-cluster.js';

interface Acked {
  readonly instanceId: number;
  readonly batchIndex: number;
  readonly value: string;
}

const clusters: NodeCluster[] = [];
after(async () => {
  await Promise.all(clusters.map((cluster) => cluster.destroy()));
});

test('grow 3 → 4 and shrink back to 3 under load: nothing acknowledged is lost', { timeout: 120_000 }, async () => {
  const cluster = await NodeCluster.create({ nodes: 4, groups: 1 });
  clusters.push(cluster);
  const initial = [1, 2, 3];
  await Promise.all(initial.map((id) => cluster.start(id, initial)));
  const acked: Acked[] = [];
  const failures: string[] = [];
  let stopped = false;
  const caller = async (node: number, caller: number, phase: string): Promise<void> => {
    for (let i = 0; !stopped; i++) {
      const value = `m:${phase}:n${node}:c${caller}:${i}`;
      const reply = await cluster.propose(node, 0, value, 5_000);
      if (!reply.ok) failures.push(String(reply.code));
      else acked.push({ value, instanceId: reply.instanceId as number, batchIndex: reply.batchIndex as number });
    }
  };
  const startLoad = (phase: string): Promise<void[]> => {
    stopped = false;
    // One proposing node, as behind a master: two would duel, and neither node is the point here.
    return Promise.all([0, 1, 2, 3, 4, 5].map((index) => caller(1, index, phase)));
  };

  // Grow while proposals continue.
  let load = startLoad('grow');
  await sleep(500);
  await cluster.start(4, [1, 2, 3, 4]);
  const grown = await cluster.request(1, { type: 'addMember', group: 0, member: cluster.address(4) });
  assert.ok(grown.ok, JSON.stringify(grown));
  const grownIds = ((grown.membership as { members: { id: number }[] }).members).map((member) => member.id);
  assert.deepEqual(grownIds, [1, 2, 3, 4]);
  await sleep(1_500);
  stopped = true;
  await load;
  const grownAcked = acked.length;
  assert.ok(grownAcked > 20, `proposals went on while growing: ${grownAcked}`);

  // The new member catches up by learning, then takes part: it proposes.
  let fromFour: ControlReply = { id: 0, ok: false };
  const proposeDeadline = Date.now() + 20_000;
  for (let attempt = 0; !fromFour.ok && Date.now() < proposeDeadline; attempt++) {
    fromFour = await cluster.propose(4, 0, `m:from-node-4:${attempt}`, 5_000);
    if (fromFour.ok) acked.push({ value: `m:from-node-4:${attempt}`, instanceId: fromFour.instanceId as number,
      batchIndex: fromFour.batchIndex as number });
  }
  assert.ok(fromFour.ok, `node 4 proposes as a member: ${JSON.stringify(fromFour)}`);

  // Shrink while proposals continue.
  load = startLoad('shrink');
  await sleep(500);
  const shrunk = await cluster.request(1, { type: 'removeMember', group: 0, nodeId: 4 });
  assert.ok(shrunk.ok, JSON.stringify(shrunk));
  await sleep(1_000);
  stopped = true;
  await load;
  assert.ok(acked.length > grownAcked + 20, `proposals went on while shrinking: ${acked.length - grownAcked}`);
  assert.deepEqual(failures.filter((code) => code !== 'CONFLICT'), [], 'only lost races may fail');

  // Every node, the removed one included, ends with the same log, holding every acknowledged value.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const summaries = await Promise.all(cluster.ids.map((id) => cluster.summary(id)));
    const first = summaries[0]![0]!;
    if (summaries.every((summary) => summary[0]!.nowInstanceId === first.nowInstanceId &&
      summary[0]!.logDigest === first.logDigest)) {
      for (const summary of summaries) {
        assert.equal(summary[0]!.duplicates, 0);
        assert.equal(summary[0]!.executed, summary[0]!.logEntries);
      }
      break;
    }
    if (Date.now() > deadline) assert.fail(`no convergence: ${JSON.stringify(summaries)}`);
    await sleep(250);
  }
  const membership = await cluster.request(4, { type: 'members', group: 0 }) as ControlReply & {
    membership: { members: { id: number }[]; version: number };
  };
  assert.deepEqual(membership.membership.members.map((member) => member.id), [1, 2, 3]);
  for (const id of cluster.ids) {
    for (const entry of acked.filter((_, index) => index % 7 === 0)) {
      const values = await cluster.values(id, 0, entry.instanceId);
      assert.equal(values[entry.batchIndex], entry.value, `node ${id} instance ${entry.instanceId}`);
    }
  }
});
