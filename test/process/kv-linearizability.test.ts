// Jepsen-style: eight clients (with sessions, as KvClient has by default) run a random mix of reads,
// writes, conditional writes and deletes over six keys of a real `multipaxos cluster up` cluster
// while a nemesis kills masters with kill -9 (and restarts them) and freezes them with SIGSTOP for
// 2.5 leases. Every operation is recorded with its
// interval and outcome, and the whole history must be linearizable (src/testing/linearizability.ts);
// each key's final version must count exactly the writes applied to it (none applied twice).
//
// The freeze is the dangerous case for lease reads (Consul 2014, etcd locks 2020): a master that wakes
// up after its lease ran out, with requests waiting in its sockets, must not answer a read from its
// old state. The workload alone hardly tests that: every client soon waits on the frozen master, so
// nothing is written elsewhere meanwhile. So during each freeze, once another node serves the group,
// a probe writes the group's keys there and, once that is acknowledged, sends reads of them straight
// to the frozen node, which sees them only when it wakes. All of it is recorded in the history.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import { groupOfKey } from '../../src/kv/key-hash.js';
import {
  historyRecorder, kvModel, type HistoryRecorder, type KvClientLike, type KvInput, type RecordedOperation,
} from '../../src/testing/kv-model.js';
import { checkLinearizability } from '../../src/testing/linearizability.js';
import { clusterScope, processesMentioning, startClusterUp } from '../support/cluster-up.js';
import { writesAppliedTwice } from '../support/kv-applications.js';
import { FakeKv, forgeStaleRead } from '../support/kv-histories.js';
import { MasterNemesis, servingMaster, type Fault } from '../support/kv-nemesis.js';
import { seededRandom, type Random } from '../support/random.js';

const LEASE_MS = 1_000;
const GROUPS = 2;
const CLIENTS = 8;
const KEYS_PER_GROUP = 3;
const CLIENT_TIMEOUT_MS = 3_000;
const WARM_UP_MS = 1_500;
const DOWN_MS = 3_000;
const PAUSE_MS = 2.5 * LEASE_MS;
/** After each fault, time for the cluster to settle and for operations to succeed again. */
const RECOVER_MS = 1_500;
/**
 * About 15 s of faults: freeze, kill, freeze (the freeze twice: it is the case lease reads can get
 * wrong). One more freeze follows if no freeze could be probed: a new master does not always take over
 * within the freeze (measured: 0.9 to 3.3 s after the SIGSTOP, with the 1 s lease).
 */
const PLAN = ['pause', 'kill', 'pause'] as const;

/** Key names, `perGroup` of them in each group, so that every fault hits keys under load. */
function keysByGroup(groups: number, perGroup: number): string[][] {
  const byGroup: string[][] = Array.from({ length: groups }, () => []);
  for (let index = 0; byGroup.some((keys) => keys.length < perGroup); index++) {
    const key = `key-${index}`;
    const keys = byGroup[groupOfKey(key, groups)] as string[];
    if (keys.length < perGroup) keys.push(key);
  }
  return byGroup;
}

/**
 * One client's loop until `stopped()`: 40% linearizable get, 30% put of a unique value, 20% put
 * conditional on the version this client last read of the key (0 before any read), 10% delete.
 */
async function runClient(
  id: number, client: KvClientLike, recorder: HistoryRecorder, keys: readonly string[], random: Random,
  stopped: () => boolean,
): Promise<void> {
  const lastRead = new Map<string, number>();
  for (let seq = 0; !stopped(); seq++) {
    const key = random.pick(keys);
    const roll = random.next();
    const input: KvInput = roll < 0.4 ? { kind: 'get', key }
      : roll < 0.7 ? { kind: 'put', key, value: `c${id}-${seq}` }
        : roll < 0.9 ? { kind: 'put', key, value: `c${id}-${seq}`, expectedVersion: lastRead.get(key) ?? 0 }
          : { kind: 'delete', key };
    const output = await recorder.perform(id, client, input, { timeoutMs: CLIENT_TIMEOUT_MS });
    if (output !== undefined && input.kind === 'get' && 'value' in output) lastRead.set(key, output.version);
    // A failed call already spent time retrying inside the client; a short breath avoids a hot loop.
    if (output === undefined) await sleep(10);
  }
}

test('the checker rejects a recorded history once one read is replaced by an older value', async () => {
  // The same workload and recorder as below, against an in-memory KV: no processes needed.
  const recorder = historyRecorder();
  const keys = keysByGroup(GROUPS, KEYS_PER_GROUP).flat();
  let done = 0;
  const stopped = (): boolean => ++done > 600;
  const kv = new FakeKv(seededRandom(100));
  await Promise.all(Array.from({ length: CLIENTS }, (_, id) =>
    runClient(id, kv, recorder, keys, seededRandom(id), stopped)));
  const history = recorder.history();
  const honest = checkLinearizability(kvModel, history);
  assert.equal(honest.result, 'ok', honest.explanation);
  const forged = forgeStaleRead(history);
  assert.ok(forged !== undefined, 'a read after an acknowledged write exists');
  const result = checkLinearizability(kvModel, forged.history);
  assert.equal(result.result, 'illegal');
  assert.equal(result.partition, forged.read.input.key);
});

test('8 clients on 6 keys while masters are killed and frozen: the history is linearizable',
  { timeout: 50_000 }, async (t) => {
    const seed = Number(process.env.KV_LINEARIZABILITY_SEED ?? Math.floor(Math.random() * 2 ** 31));
    t.diagnostic(`seed ${seed} (KV_LINEARIZABILITY_SEED=${seed} repeats the workload's choices)`);
    const random = seededRandom(seed);
    const { dir, track, undo } = await clusterScope(t, 'kv-linearizability');

    const testStarted = performance.now();
    const cluster = await startClusterUp({
      // --restart=false: the nemesis restarts the nodes it kills, when it chooses.
      dir, json: true,
      flags: ['--groups', String(GROUPS), '--master-lease', String(LEASE_MS), '--restart=false'], track,
    });
    const { endpoints } = cluster;
    const probe = new KvClient({ endpoints, timeoutMs: 1_000 });
    const clients = Array.from({ length: CLIENTS }, () => new KvClient({ endpoints, timeoutMs: CLIENT_TIMEOUT_MS }));
    const nemesis = new MasterNemesis({ dir, endpoints, probe, track });
    undo.push(() => {
      for (const client of [probe, ...clients]) client.close();
    });
    // Before anything is stopped, whatever is frozen is thawed: a frozen node ignores SIGINT and SIGTERM.
    undo.push(() => nemesis.thawAll());

    const keysOf = keysByGroup(GROUPS, KEYS_PER_GROUP);
    const keys = keysOf.flat();
    const recorder = historyRecorder();
    let stop = false;
    const loadStarted = performance.now();
    const load = Promise.all(clients.map((client, id) =>
      runClient(id, client, recorder, keys, seededRandom(seed + 1 + id), () => stop)));
    undo.push(async () => {
      stop = true;
      await load.catch(() => {});
    });

    // The probe of a freeze (see the header). It returns when the reads are answered, after the thaw.
    const probeFrozen = async (group: number, frozenId: number): Promise<void> => {
      const started = performance.now();
      const others = endpoints.filter((_, index) => index + 1 !== frozenId);
      let next: number | undefined;
      while (next === undefined && performance.now() - started < PAUSE_MS - 300) {
        next = await servingMaster(probe, others, group);
        if (next === undefined) await sleep(20);
      }
      if (next === undefined) return;
      const fresh = new KvClient({ endpoints: [endpoints[next - 1] as string], timeoutMs: CLIENT_TIMEOUT_MS });
      const frozen = new KvClient({ endpoints: [endpoints[frozenId - 1] as string], timeoutMs: CLIENT_TIMEOUT_MS });
      try {
        const groupKeys = keysOf[group] as string[];
        await Promise.all(groupKeys.map((key) =>
          recorder.perform(`fresh-${frozenId}`, fresh, { kind: 'put', key, value: `fresh-${key}-${started}` })));
        await Promise.all(groupKeys.map((key) => recorder.perform(`frozen-${frozenId}`, frozen, { kind: 'get', key })));
      } finally {
        fresh.close();
        frozen.close();
      }
    };

    // A freeze's probe is armed when its reads reached the frozen node while it slept, after writes it
    // cannot know of were acknowledged: then an answer from its old state would be a stale read.
    const probeReport = (fault: Fault): { armed: boolean; text: string } => {
      const by = (prefix: string): RecordedOperation[] => recorder.entries().filter((entry) =>
        entry.clientId === `${prefix}-${fault.nodeId}` && entry.call >= fault.start && entry.call < fault.end);
      const writes = by('fresh');
      const reads = by('frozen');
      const acked = Math.max(...writes.map((entry) => entry.outcome === 'ok' ? entry.ret as number : Infinity));
      const armed = writes.length > 0 && reads.length > 0 && acked < fault.end;
      const text = `freeze of node ${fault.nodeId}: ${armed ? 'armed' : 'NOT armed'}; ` + (writes.length === 0
        ? 'no new master within the freeze' : `writes to the new master acknowledged ${Math.round(acked - fault.start)} ` +
          `ms into the freeze; reads sent to the frozen node: ` + reads.map((entry) =>
          `${entry.outcome === 'ok' ? JSON.stringify(entry.output) : entry.error?.code} sent at ` +
          `${Math.round(entry.call - fault.start)} ms, answered ${Math.round((entry.ret ?? NaN) - fault.end)} ms ` +
          `after the thaw`).join(', '));
      return { armed, text };
    };

    await sleep(WARM_UP_MS);
    const plan: ('pause' | 'kill')[] = [...PLAN];
    let armed = 0;
    for (let index = 0; index < plan.length; index++) {
      const group = random.int(GROUPS);
      if (plan[index] === 'kill') {
        await nemesis.killAndRestart(group, DOWN_MS);
      } else {
        const fault = await nemesis.pause(group, PAUSE_MS, (nodeId) => probeFrozen(group, nodeId));
        if (probeReport(fault).armed) armed++;
      }
      await sleep(RECOVER_MS);
      if (index === plan.length - 1 && armed === 0 && plan.length === PLAN.length) plan.push('pause');
    }
    stop = true;
    await load;
    const loadMs = performance.now() - loadStarted;

    const counts = recorder.counts();
    const history = recorder.history();
    const describe = (fault: Fault): string => `${fault.kind} node ${fault.nodeId} (master of group ${fault.group}) ` +
      `at ${((fault.start - loadStarted) / 1_000).toFixed(1)} s for ${Math.round(fault.end - fault.start)} ms`;
    t.diagnostic(`faults: ${nemesis.faults.map(describe).join('; ')}`);
    t.diagnostic(`${recorder.entries().length} operations in ${(loadMs / 1_000).toFixed(1)} s: ${counts.ok} ok, ` +
      `${counts.conflicts} version conflicts, ${counts.unknown} unknown, ${counts.failed} failed ` +
      `(${JSON.stringify(counts.codes)}); ${history.length} in the history`);
    for (const fault of nemesis.faults) if (fault.kind === 'pause') t.diagnostic(probeReport(fault).text);

    const checkStarted = performance.now();
    const result = checkLinearizability(kvModel, history);
    t.diagnostic(`linearizability: ${result.result} over ${result.partitions} keys in ${result.steps} steps, ` +
      `${Math.round(performance.now() - checkStarted)} ms`);
    assert.equal(result.result, 'ok', `not linearizable (seed ${seed}):\n${result.explanation}`);

    // The check can fail: the same history with one read made stale is refused.
    const forged = forgeStaleRead(history);
    assert.ok(forged !== undefined);
    assert.equal(checkLinearizability(kvModel, forged.history).result, 'illegal');

    // No write applied twice: the clients' writes go through sessions and are retried, with their
    // numbers, while their outcome is unknown. Each key's final version counts the writes applied to it.
    const finals = new Map<string, number>();
    for (const key of keys) finals.set(key, (await probe.get(key, { timeoutMs: 10_000 })).version);
    const twice = writesAppliedTwice(recorder.entries(), finals);
    assert.deepEqual(twice, [], `writes applied twice (seed ${seed})`);
    // The count can fail: a final version above every write recorded on the key is refused.
    const [firstKey] = keys as [string];
    const writesOnKey = recorder.entries().filter((entry) => entry.input.key === firstKey).length;
    const bumped = new Map(finals).set(firstKey, (finals.get(firstKey) as number) + writesOnKey + 1);
    assert.equal(writesAppliedTwice(recorder.entries(), bumped).length, 1);

    // Enough happened to mean something: many answers, and answers in the faulted group after every fault.
    assert.equal(nemesis.faults.length, plan.length);
    assert.ok(armed > 0, 'no freeze could be probed while the frozen node slept');
    assert.ok(counts.ok + counts.conflicts >= 500, `only ${counts.ok + counts.conflicts} operations answered`);
    nemesis.faults.forEach((fault, index) => {
      const until = nemesis.faults[index + 1]?.start ?? Infinity;
      const after = recorder.entries().filter((entry) => entry.outcome === 'ok' && entry.call >= fault.end &&
        entry.call < until && groupOfKey(entry.input.key, GROUPS) === fault.group).length;
      t.diagnostic(`after ${describe(fault)}: ${after} answers in group ${fault.group}`);
      assert.ok(after > 0, `no answer in group ${fault.group} after ${describe(fault)}`);
    });

    // Stop: the nodes restarted here with SIGINT, then cluster up with SIGINT; nothing may be left.
    for (const node of nemesis.restarted) {
      if (await node.exitWithin(0) !== undefined) continue; // killed again by a later fault
      node.child.kill('SIGINT');
      assert.deepEqual(await node.exitWithin(20_000), { code: 0, signal: null }, node.stderr());
    }
    cluster.child.kill('SIGINT');
    const exit = await cluster.exitWithin(20_000);
    assert.deepEqual(exit, { code: 0, signal: null }, `cluster up: ${cluster.stdout()}\n${cluster.stderr()}`);
    assert.match(cluster.stdout(), /^\{"event":"stopped"\}$/m);
    const left = (await processesMentioning(dir)).filter(({ argv }) => argv.includes('serve'));
    assert.deepEqual(left, [], 'kv serve processes left behind');
    t.diagnostic(`the whole test took ${((performance.now() - testStarted) / 1_000).toFixed(1)} s`);
  });
