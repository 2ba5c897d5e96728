// Waiting for real node processes to agree: every running node reports the same position and
// digests (of its log and of what its echo state machine executed) in every group.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GroupSummary, NodeCluster } from '../../src/testing/process-cluster.js';

export interface ConvergeOptions {
  readonly timeoutMs?: number;
  /** The load proposes equal values on purpose, so a value found twice in the log is no duplicate. */
  readonly equalValuesProposed?: boolean;
}

export async function converge(cluster: NodeCluster, options: ConvergeOptions = {}): Promise<GroupSummary[]> {
  const timeoutMs = options.timeoutMs ?? 40_000;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const summaries = await Promise.all(cluster.ids.map((id) => cluster.summary(id)));
    const first = summaries[0] as GroupSummary[];
    const same = summaries.every((summary) => summary.every((group, index) => {
      const reference = first[index] as GroupSummary;
      return group.nowInstanceId === reference.nowInstanceId && group.logDigest === reference.logDigest &&
        group.executedDigest === reference.executedDigest && group.executed === reference.executed;
    }));
    if (same) {
      for (const group of first) {
        // Checks no comparison between nodes can make: a bug every node shares.
        if (options.equalValuesProposed !== true) {
          assert.equal(group.duplicates, 0, `group ${group.group}: a value was chosen twice`);
        }
        assert.equal(group.executed, group.logEntries, `group ${group.group}: executions ≠ values in the log`);
      }
      return first;
    }
    last = JSON.stringify(summaries);
    if (Date.now() > deadline) assert.fail(`nodes did not converge within ${timeoutMs} ms: ${last}`);
    await sleep(250);
  }
}

/** Node 1 proposes each group's identity at first start: let that settle before a crowd arrives. */
export async function waitForGroupIdentities(cluster: NodeCluster, groups: readonly number[]): Promise<void> {
  for (const group of groups) {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const reply = await cluster.request(1, { type: 'members', group });
      if ((reply.membership as { version: number }).version >= 0) break;
      assert.ok(Date.now() < deadline, `group ${group} has no identity after 10 s`);
      await sleep(20);
    }
  }
}
