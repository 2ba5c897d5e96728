// One KvClient, as an application uses it, against a `multipaxos cluster up` cluster (1 s lease)
// whose master of the key's group is frozen with SIGSTOP for several leases and then thawed. The
// client runs a loop of puts and linearizable gets with short per-call deadlines. It must fail over
// as fast as the cluster does: its longest gap without a successful operation is at most the lease
// plus one second (before per-attempt timeouts it was the whole freeze). And it stays honest: a
// write of unknown outcome is reported so, never sent again, so the single writer's versions step
// by one per write that may have been applied, and every read sees every acknowledged write.
//
// Not covered here: a master cut off from the other nodes while clients still reach it (there is no
// network-partition tool for real processes); the scripted tests in test/kv/client-failover.test.ts
// cover the client's side of it (NO_MASTER from the cut-off master sends the client to the others).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { groupOfKey } from '../../src/kv/key-hash.js';
import { KvError } from '../../src/kv/kv-error.js';
import { MasterNemesis, startNemesisCluster } from '../support/kv-nemesis.js';

const LEASE_MS = 1_000;
const GROUPS = 2;
const KEY = 'failover';
const WARM_UP_MS = 2_000;
const PAUSE_MS = 5 * LEASE_MS;
const AFTER_MS = 2_000;
/** Each call's deadline: long enough to outlast an election, short enough to keep the loop going. */
const CALL_TIMEOUT_MS = 2_000;
const MAX_GAP_MS = LEASE_MS + 1_000;

interface Operation {
  readonly kind: 'put' | 'get';
  readonly call: number;
  readonly ret: number;
  /** ok; maybe: a write that may have been applied; failed: certainly not applied, or a read that failed. */
  readonly outcome: 'ok' | 'maybe' | 'failed';
  readonly value?: string | null;
  readonly version?: number;
  readonly code?: string;
}

test('a KvClient fails over from a frozen master within the lease plus a second, and stays honest',
  { timeout: 60_000 }, async (t) => {
    assert.equal(groupOfKey(KEY, GROUPS), 0);
    const { dir, track, undo, endpoints, client, probe, nemesis } = await startNemesisCluster(t, 'kv-client-failover',
      { groups: GROUPS, leaseMs: LEASE_MS, clientTimeoutMs: CALL_TIMEOUT_MS });

    // The loop: put a new value, read it back, and so on, one call at a time, each outcome kept.
    const history: Operation[] = [];
    let stop = false;
    const loop = (async () => {
      for (let seq = 0; !stop; seq++) {
        const kind = seq % 2 === 0 ? 'put' : 'get';
        const call = performance.now();
        const value = `v${seq}`;
        try {
          if (kind === 'put') {
            const { version } = await client.put(KEY, value);
            history.push({ kind, call, ret: performance.now(), outcome: 'ok', value, version });
          } else {
            const read = await client.get(KEY);
            history.push({ kind, call, ret: performance.now(), outcome: 'ok', value: read.value, version: read.version });
          }
        } catch (error) {
          if (!(error instanceof KvError)) throw error;
          const outcome = kind === 'put' && error.mayHaveBeenApplied ? 'maybe' : 'failed';
          history.push({ kind, call, ret: performance.now(), outcome, value: kind === 'put' ? value : undefined,
            code: error.code });
        }
      }
    })();
    undo.push(async () => {
      stop = true;
      await loop.catch(() => {});
    });

    await new Promise((resolve) => setTimeout(resolve, WARM_UP_MS));
    // The cluster's own failover, as a fresh observer sees it: when another node serves the group.
    let servingAt: number | undefined;
    const fault = await nemesis.pause(0, PAUSE_MS, async (frozenId) => {
      const others = endpoints.filter((_, index) => index + 1 !== frozenId);
      const watcher = new MasterNemesis({ dir, endpoints: others, probe, track });
      const next = await watcher.masterOf(0, PAUSE_MS - 200);
      if (next !== undefined) servingAt = performance.now();
    });
    await new Promise((resolve) => setTimeout(resolve, AFTER_MS));
    stop = true;
    await loop;

    // The longest gap between successful operations, from the first success to the end of the run.
    const successes = history.filter((op) => op.outcome === 'ok').map((op) => op.ret);
    assert.ok(successes.length > 10, `only ${successes.length} operations succeeded`);
    let gap = 0;
    let gapEnd = 0;
    for (const [index, at] of [...successes, performance.now()].entries()) {
      const before = successes[index - 1];
      if (before !== undefined && at - before > gap) {
        gap = at - before;
        gapEnd = at;
      }
    }
    const failed = history.filter((op) => op.outcome !== 'ok');
    t.diagnostic(`node ${fault.nodeId} frozen for ${Math.round(fault.end - fault.start)} ms; another node served ` +
      `${servingAt === undefined ? 'never' : `${Math.round(servingAt - fault.start)} ms`} after the SIGSTOP; the ` +
      `client's longest gap: ${Math.round(gap)} ms (ending ${Math.round(gapEnd - fault.start)} ms after the SIGSTOP); ` +
      `${history.length} operations, ${failed.length} failed: ` +
      `${failed.map((op) => `${op.kind} ${op.code}${op.outcome === 'maybe' ? ' (maybe applied)' : ''} at ` +
        `${Math.round(op.call - fault.start)} ms`).join(', ')}`);
    // The bound is the lease plus a second, which the cluster's own failover fits on an idle machine
    // (0.7 to 1.0 s measured). On a loaded one the cluster itself can take longer (up to 3.3 s measured
    // under eight clients, test/process/kv-linearizability.test.ts), and no client can beat the cluster:
    // then the client is held to the cluster's failover plus half a second.
    assert.ok(servingAt !== undefined, 'no other node served the group during the freeze');
    const bound = Math.max(MAX_GAP_MS, servingAt - fault.start + 500);
    assert.ok(gap <= bound, `the client went ${Math.round(gap)} ms without a successful operation (bound ${bound} ms)`);

    // Honesty. A single writer: each acknowledged put's version is the previous one's plus one, plus at
    // most one per maybe-applied put in between (nothing applied twice, nothing acknowledged lost).
    let last: Operation | undefined;
    let maybeSince = 0;
    for (const op of history.filter((entry) => entry.kind === 'put')) {
      if (op.outcome === 'maybe') maybeSince++;
      if (op.outcome !== 'ok') continue;
      const step = (op.version as number) - (last?.version ?? 0);
      assert.ok(step >= 1 && step <= 1 + maybeSince,
        `put ${op.value} got version ${op.version} after version ${last?.version} with ${maybeSince} maybe-applied puts`);
      last = op;
      maybeSince = 0;
    }
    // Every read sees the last acknowledged write before it began, or a later write (one that may have been applied).
    const puts = history.filter((op) => op.kind === 'put');
    for (const read of history.filter((op) => op.kind === 'get' && op.outcome === 'ok')) {
      const acked = puts.filter((op) => op.outcome === 'ok' && op.ret < read.call).at(-1);
      if (acked === undefined) continue;
      assert.ok((read.version as number) >= (acked.version as number),
        `a read at ${Math.round(read.call)} saw version ${read.version}, before the acknowledged ${acked.version}`);
      if (read.version === acked.version) assert.equal(read.value, acked.value);
      else assert.ok(puts.some((op) => op.value === read.value && op.outcome !== 'failed' && op.call < read.ret),
        `a read saw ${read.value} (version ${read.version}), which no put that may have been applied wrote`);
    }
  });
