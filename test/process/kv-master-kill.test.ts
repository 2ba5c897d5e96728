// The replicated KV service as an operator runs it (`multipaxos cluster up`), under a write load,
// when the master of group 0 is killed with kill -9: a new master serves within the lease plus a
// few seconds, writes go on, every acknowledged write survives (checked by linearizable reads),
// versions of a key only grow, nothing that certainly failed was applied, the restarted node
// catches up, and SIGINT stops the cluster cleanly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import { groupOfKey } from '../../src/kv/key-hash.js';
import { KvError } from '../../src/kv/kv-error.js';
import {
  CLI, clusterScope, kvServeProcess, processesMentioning, spawnCli, startClusterUp, type Exit,
} from '../support/cluster-up.js';
import { servingMaster } from '../support/kv-nemesis.js';

const LEASE_MS = 1_000;
const GROUPS = 2;
const WRITERS = 16;
const KEYS_PER_WRITER = 4;
const LOAD_MS = 8_000;
const KILL_AFTER_MS = 3_000;

interface Write {
  readonly seq: number;
  readonly value: string;
  /** ack: acknowledged; maybe: failed, may have been applied; failed: certainly not applied. */
  readonly outcome: 'ack' | 'maybe' | 'failed';
  readonly version?: number;
  readonly code?: string;
  /** When the answer came (performance.now()). */
  readonly at: number;
}

/** What a linearizable read of `key` may return after its writer's `writes` (in order): see the checks below. */
function acceptableFinal(writes: readonly Write[]): { values: Set<string | null>; lastAck: Write | undefined } {
  let lastAckIndex = -1;
  writes.forEach((write, index) => { if (write.outcome === 'ack') lastAckIndex = index; });
  const lastAck = lastAckIndex < 0 ? undefined : writes[lastAckIndex];
  const values = new Set<string | null>([lastAck === undefined ? null : lastAck.value]);
  for (const write of writes.slice(lastAckIndex + 1)) if (write.outcome === 'maybe') values.add(write.value);
  return { values, lastAck };
}

test('kill -9 of the master of group 0 under a write load: failover, no lost write, catch-up, clean stop',
  { timeout: 90_000 }, async (t) => {
    const { dir, track, undo } = await clusterScope(t, 'kv-master-kill');

    const cluster = await startClusterUp({
      // --restart=false: the test restarts the killed node itself, with its own command line.
      dir, json: true,
      flags: ['--groups', String(GROUPS), '--master-lease', String(LEASE_MS), '--restart=false'], track,
    });
    const { endpoints } = cluster;
    assert.equal(endpoints.length, 3);
    const client = new KvClient({ endpoints, timeoutMs: 4_000 });
    const probe = new KvClient({ endpoints, timeoutMs: 1_000 });
    undo.push(() => {
      client.close();
      probe.close();
    });

    // The load: each writer writes its own keys in turn, one write at a time, and keeps the outcome of each.
    const history = new Map<string, Write[]>();
    const started = performance.now();
    let stopAt = started + LOAD_MS;
    const writer = async (w: number): Promise<void> => {
      for (let seq = 0; performance.now() < stopAt; seq++) {
        const key = `w${w}-k${seq % KEYS_PER_WRITER}`;
        const value = `w${w}-s${seq}`;
        const writes = history.get(key) ?? [];
        history.set(key, writes);
        try {
          const { version } = await client.put(key, value);
          writes.push({ seq, value, outcome: 'ack', version, at: performance.now() });
        } catch (error) {
          if (!(error instanceof KvError)) throw error;
          writes.push({
            seq, value, outcome: error.mayHaveBeenApplied ? 'maybe' : 'failed', code: error.code, at: performance.now(),
          });
          await sleep(20);
        }
      }
    };
    const load = Promise.all(Array.from({ length: WRITERS }, (_, w) => writer(w)));
    // Writers must be stopped even when an assertion below fails, or they would run on for seconds.
    undo.push(async () => {
      stopAt = 0;
      await load.catch(() => {});
    });

    await sleep(KILL_AFTER_MS);
    const first = await servingMaster(probe, endpoints, 0);
    assert.ok(first !== undefined, 'group 0 has a serving master under load');
    const victim = await kvServeProcess(dir, first);
    assert.ok(victim !== undefined, `the kv serve process of node ${first} is found`);
    assert.equal(victim.ppid, cluster.child.pid, 'it is a child of cluster up');
    const acksBeforeKill = [...history.values()].flat().filter((write) => write.outcome === 'ack').length;
    assert.ok(acksBeforeKill > 0, 'writes were acknowledged before the kill');

    process.kill(victim.pid, 'SIGKILL');
    const killedAt = performance.now();
    await cluster.waitFor(new RegExp(`"event":"exit","nodeId":${first},"detail":"exited \\(signal SIGKILL\\)"`), 5_000);

    // A new master serves group 0 within the lease plus five seconds.
    const survivors = endpoints.filter((_, index) => index + 1 !== first);
    let second: number | undefined;
    while (second === undefined && performance.now() - killedAt < LEASE_MS + 5_000) {
      second = await servingMaster(probe, survivors, 0);
      if (second === undefined) await sleep(50);
    }
    const failoverMs = performance.now() - killedAt;
    assert.ok(second !== undefined, `no node serves group 0 ${Math.round(failoverMs)} ms after the kill`);
    assert.notEqual(second, first);
    const servingAt = performance.now();
    // Keep writing for a while under the new master.
    stopAt = Math.max(stopAt, servingAt + 2_000);
    await load;

    const writes = [...history.values()].flat();
    const acked = writes.filter((write) => write.outcome === 'ack');
    const acksAfterFailover = acked.filter((write) => write.at > servingAt);
    const group0AcksAfterFailover = [...history].filter(([key]) => groupOfKey(key, GROUPS) === 0)
      .flatMap(([, list]) => list).filter((write) => write.outcome === 'ack' && write.at > servingAt);
    t.diagnostic(`node ${first} killed, node ${second} serves group 0 after ${Math.round(failoverMs)} ms; ` +
      `${writes.length} writes: ${acked.length} acknowledged (${acksAfterFailover.length} after the failover, ` +
      `${group0AcksAfterFailover.length} of them in group 0), ` +
      `${writes.filter((write) => write.outcome === 'maybe').length} may have been applied, ` +
      `${writes.filter((write) => write.outcome === 'failed').length} certainly not applied`);
    assert.ok(group0AcksAfterFailover.length > 0, 'group 0 acknowledges writes under its new master');

    // Every key: versions of acknowledged writes strictly increase, by one per write that may have been
    // applied in between (only this writer writes the key, and a write that certainly failed was not
    // applied); the linearizable read returns the last acknowledged value or a later maybe-applied one.
    const finals = new Map<string, string | null>();
    for (const [key, list] of history) {
      let previous: Write | undefined;
      let maybeSince = 0;
      for (const write of list) {
        if (write.outcome === 'maybe') maybeSince++;
        if (write.outcome !== 'ack') continue;
        if (previous !== undefined) {
          const step = (write.version as number) - (previous.version as number);
          assert.ok(step >= 1 && step <= 1 + maybeSince,
            `${key}: version ${previous.version} (seq ${previous.seq}) then ${write.version} (seq ${write.seq}) ` +
            `with ${maybeSince} maybe-applied writes between`);
        }
        previous = write;
        maybeSince = 0;
      }
      const read = await client.get(key, { timeoutMs: 10_000 });
      const { values, lastAck } = acceptableFinal(list);
      assert.ok(values.has(read.value), `${key} reads ${JSON.stringify(read)}; acceptable: ` +
        `${JSON.stringify([...values])}; its last writes: ${JSON.stringify(list.slice(-5))}`);
      if (lastAck !== undefined && read.value === lastAck.value) {
        assert.equal(read.version, lastAck.version, `${key}: the last acknowledged write's version`);
      }
      if (lastAck !== undefined) assert.ok(read.version >= (lastAck.version as number));
      finals.set(key, read.value);
    }

    // Restart the killed node with the very command line cluster up gave it; it catches up on its own.
    assert.equal(victim.argv[1], CLI, `cluster up runs the same CLI: ${victim.argv.join(' ')}`);
    // With an IPC channel, as cluster up does: the node stops by itself should this test die.
    const restarted = spawnCli(victim.argv.slice(2), { ipc: true });
    track.push(restarted);
    await restarted.waitFor(/"event":"started"/, 15_000);
    const endpoint = endpoints[first - 1] as string;
    const local = new KvClient({ endpoints: [endpoint], timeoutMs: 2_000 });
    undo.push(() => local.close());
    const catchUpDeadline = performance.now() + 20_000;
    let behind: string[] = [];
    for (;;) {
      behind = [];
      for (const [key, value] of finals) {
        const read = await local.get(key, { stale: true }).catch((error: unknown) => String(error));
        if (typeof read === 'string') behind.push(`${key}: ${read}`);
        else if (read.value !== value) behind.push(`${key}: ${JSON.stringify(read.value)} not ${JSON.stringify(value)}`);
      }
      if (behind.length === 0 || performance.now() > catchUpDeadline) break;
      await sleep(200);
    }
    assert.deepEqual(behind, [], `the restarted node ${first} did not catch up`);

    // Stop: our restarted node with SIGINT, then cluster up with SIGINT; nothing is left running.
    restarted.child.kill('SIGINT');
    assert.deepEqual(await restarted.exitWithin(20_000), { code: 0, signal: null }, restarted.stderr());
    cluster.child.kill('SIGINT');
    const exit: Exit | undefined = await cluster.exitWithin(20_000);
    assert.deepEqual(exit, { code: 0, signal: null }, `cluster up: ${cluster.stdout()}\n${cluster.stderr()}`);
    assert.match(cluster.stdout(), /^\{"event":"stopped"\}$/m);
    const left = (await processesMentioning(dir)).filter(({ argv }) => argv.includes('serve'));
    assert.deepEqual(left, [], 'kv serve processes left behind');
  });

