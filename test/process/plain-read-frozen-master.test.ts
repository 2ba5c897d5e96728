// A plain HTTP read (curl, a load balancer: no KvClient) sent to a surviving node while the master
// of the key's group is frozen with SIGSTOP, on a `multipaxos cluster up` cluster with a 2 s lease.
// The survivor forwards the read to the master it still knows; the frozen master answers nothing.
// The read must be answered by the next master within its deadline, not time out waiting on the
// frozen one (each forward waits READ_ATTEMPT_MS, then the read is tried again: master-wait.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TIMEOUT_HEADER } from '../../src/kv/http-headers.js';
import { groupOfKey } from '../../src/kv/key-hash.js';
import { startNemesisCluster } from '../support/kv-nemesis.js';

// The survivor answers at once once its group has had no master for a lease (a minority side):
// a lease of 2 s leaves a loaded machine room for the election after the frozen master's lease.
const LEASE_MS = 2_000;
const GROUPS = 2;
const KEY = 'frozen-read';
const PAUSE_MS = 10_000;
const DEADLINE_MS = 8_000;

test('a plain read at a survivor while the master is frozen is answered by the next master within its deadline',
  { timeout: 60_000 }, async (t) => {
    assert.equal(groupOfKey(KEY, GROUPS), 1);
    const { endpoints, client, nemesis } = await startNemesisCluster(t, 'plain-read-frozen-master',
      { groups: GROUPS, leaseMs: LEASE_MS, clientTimeoutMs: 5_000 });
    const { version } = await client.put(KEY, 'before the freeze');

    let answer: { status: number; body: string; ms: number; survivor: string } | undefined;
    const fault = await nemesis.pause(1, PAUSE_MS, async (frozenId) => {
      const survivor = endpoints.find((_, index) => index + 1 !== frozenId) as string;
      const began = performance.now();
      const response = await fetch(`${survivor}/v1/kv/${KEY}`, { headers: { [TIMEOUT_HEADER]: String(DEADLINE_MS) } });
      answer = { status: response.status, body: await response.text(), ms: performance.now() - began, survivor };
    });
    assert.ok(answer !== undefined);
    t.diagnostic(`node ${fault.nodeId} frozen; the read at a survivor answered ${answer.status} after ` +
      `${Math.round(answer.ms)} ms: ${answer.body}`);
    assert.equal(answer.status, 200, `the read failed: ${answer.body}`);
    assert.deepEqual(JSON.parse(answer.body), { key: KEY, value: 'before the freeze', version });
    // It got there by trying again, not by one long wait on the frozen master.
    const metrics = await (await fetch(`${answer.survivor}/metrics`)).text();
    const retries = Number(/^multipaxos_kv_master_wait_retries_total (\d+)/m.exec(metrics)?.[1] ?? 0);
    assert.ok(retries >= 1, `the survivor tried again ${retries} times`);
  });
