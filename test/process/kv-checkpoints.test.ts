// Checkpoints between real KV processes (`multipaxos cluster up`, snapshots every 40 instances, a log
// hold of 10, cleaning every 100 ms): a node killed with kill -9 while the others write past its
// log comes back by installing a snapshot; a fourth node added to the cleaned cluster starts from
// an empty disk the same way; a receiver killed in the middle of an install restarts into a
// consistent state. Every acknowledged write is on every node at the end, read locally from each.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import {
  clusterScope, freeBasePort, kvServeProcess, spawnCli, startClusterUp, type Spawned,
} from '../support/cluster-up.js';

const CHECKPOINT_FLAGS = [
  '--groups', '1', '--master-lease', '1000', '--snapshot-every', '40', '--log-hold', '10', '--clean-interval', '100',
  // The tests restart the nodes they kill themselves (with --verbose, or at a chosen moment).
  '--restart=false',
];

interface NodeStatus {
  readonly groups: readonly { readonly nowInstanceId: number; readonly minChosenInstanceId: number }[];
}

async function status(endpoint: string): Promise<NodeStatus | undefined> {
  try {
    const reply = await fetch(`${endpoint}/status`, { signal: AbortSignal.timeout(2_000) });
    return reply.ok ? await reply.json() as NodeStatus : undefined;
  } catch {
    return undefined;
  }
}

async function metric(endpoint: string, name: string): Promise<number> {
  const text = await (await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`));
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** The value a node holds for `key`, read locally (stale) from that node alone. */
async function localValue(endpoint: string, key: string): Promise<string | null> {
  const reply = await fetch(`${endpoint}/v1/kv/${key}?stale=true`, { signal: AbortSignal.timeout(2_000) });
  if (reply.status === 404) return null;
  assert.equal(reply.status, 200, `stale GET ${key} from ${endpoint}`);
  return (await reply.json() as { value: string }).value;
}

async function until(check: () => Promise<boolean>, what: string | (() => string), ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) {
      assert.fail(`timed out after ${ms} ms waiting until ${typeof what === 'string' ? what : what()}`);
    }
    await sleep(100);
  }
}

/** Writes keys k0..k{keys-1} round after round; returns the last acknowledged value of each. */
async function write(
  client: KvClient, acked: Map<string, string>, label: string, count: number, keys = 60,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const key = `k${i % keys}`;
    const value = `${label}-${i}`;
    await client.put(key, value);
    acked.set(key, value);
  }
}

/** Every node that is up holds exactly the acknowledged values. */
async function assertEverywhere(endpoints: readonly string[], acked: ReadonlyMap<string, string>): Promise<void> {
  const newest = Math.max(...await Promise.all(endpoints.map(async (endpoint) =>
    (await status(endpoint))?.groups[0]?.nowInstanceId ?? -1)));
  await until(async () => (await Promise.all(endpoints.map(async (endpoint) =>
    ((await status(endpoint))?.groups[0]?.nowInstanceId ?? -1) >= newest))).every(Boolean),
  'every node caught up', 20_000);
  for (const endpoint of endpoints) {
    for (const [key, value] of acked) assert.equal(await localValue(endpoint, key), value, `${key} on ${endpoint}`);
  }
}

/** Until every survivor's log starts above `instanceId`: a node there can no longer learn from the log. */
async function waitCleanedPast(endpoints: readonly string[], instanceId: number): Promise<void> {
  await until(async () => (await Promise.all(endpoints.map(async (endpoint) =>
    ((await status(endpoint))?.groups[0]?.minChosenInstanceId ?? 0) > instanceId + 1))).every(Boolean),
  `the logs are cleaned past ${instanceId}`, 20_000);
}

async function startCluster(t: TestContext, prefix: string) {
  const scope = await clusterScope(t, prefix);
  const cluster = await startClusterUp({ dir: scope.dir, json: true, flags: CHECKPOINT_FLAGS, track: scope.track });
  const client = new KvClient({ endpoints: cluster.endpoints, timeoutMs: 5_000 });
  scope.undo.push(() => client.close());
  return { ...scope, cluster, client };
}

/**
 * The transport keeps what it could not deliver to a peer that is down for up to 5 s (its
 * maxQueueAgeMs) and delivers it on reconnect: a node restarted within that time learns the
 * instances it missed from the accept and chosen messages its peers queued for it, and needs no
 * checkpoint (correctly). Waiting them out makes the restarted node depend on a checkpoint.
 */
const QUEUED_MESSAGES_EXPIRE_MS = 5_500;


test('a node killed while the others write past its log comes back through a snapshot',
  { timeout: 90_000 }, async (t) => {
    const { dir, track, cluster, client } = await startCluster(t, 'kv-checkpoint-restart');
    const acked = new Map<string, string>();
    await write(client, acked, 'before', 30);
    const victimId = 3;
    const victimEndpoint = cluster.endpoints[victimId - 1] as string;
    const victimAt = (await status(victimEndpoint))?.groups[0]?.nowInstanceId ?? 0;
    const victim = await kvServeProcess(dir, victimId);
    assert.ok(victim !== undefined, 'node 3 runs');
    process.kill(victim.pid, 'SIGKILL');
    const survivors = cluster.endpoints.filter((endpoint) => endpoint !== victimEndpoint);
    await write(new KvClient({ endpoints: survivors, timeoutMs: 5_000 }), acked, 'away', 300);
    await waitCleanedPast(survivors, victimAt);
    await sleep(QUEUED_MESSAGES_EXPIRE_MS);
    const before = JSON.stringify(await Promise.all(survivors.map(async (endpoint) =>
      (await status(endpoint))?.groups[0])));

    const restarted = spawnCli([...victim.argv.slice(2), '--verbose'], { ipc: true });
    track.push(restarted);
    await restarted.waitFor(/"event":"started"/, 15_000);
    let catchUp = '';
    await until(async () => {
      if (await metric(victimEndpoint, 'multipaxos_checkpoints_installed_total') >= 1) return true;
      catchUp = JSON.stringify(await Promise.all(cluster.endpoints.map(async (endpoint) => [
        await metric(endpoint, 'multipaxos_catchup_values_sent_total'),
        await metric(endpoint, 'multipaxos_catchup_values_received_total'),
        await metric(endpoint, 'multipaxos_min_chosen_instance'),
        await metric(endpoint, 'multipaxos_checkpoint_bytes_received_total'),
        await metric(endpoint, 'multipaxos_checkpoint_install_failures_total'),
        await metric(endpoint, 'multipaxos_checkpoints_sent_total'),
        await metric(endpoint, 'multipaxos_instances_executed_total'),
        await metric(endpoint, 'multipaxos_instance_id')])));
      return false;
    }, () => `node 3 (at ${victimAt}) installed a checkpoint (survivors: ${before}; sent, received, min: ` +
      `${catchUp}; its log: ${restarted.stderr().slice(-3_000)})`, 30_000);
    await write(client, acked, 'after', 30);
    await assertEverywhere(cluster.endpoints, acked);
  });

test('a fourth node added to a cluster whose log was cleaned starts from a snapshot and serves',
  { timeout: 90_000 }, async (t) => {
    const { dir, track, cluster, client } = await startCluster(t, 'kv-checkpoint-grow');
    const acked = new Map<string, string>();
    await write(client, acked, 'before', 300);
    await waitCleanedPast(cluster.endpoints, 5);
    // Node 4 joins: the members agree first, then it starts with an empty disk.
    const template = await kvServeProcess(dir, 1);
    assert.ok(template !== undefined);
    const base = await freeBasePort(1);
    const [paxosPort, httpPort] = [base + 100, base + 1];
    const added = await fetch(`${cluster.endpoints[0]}/v1/members?group=0`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id: 4, host: '127.0.0.1', port: paxosPort }), signal: AbortSignal.timeout(10_000),
    });
    assert.equal(added.status, 200, await added.text());
    const args = [...template.argv.slice(2)];
    const set = (flag: string, value: string): void => { args[args.indexOf(flag) + 1] = value; };
    set('--id', '4');
    set('--listen', `127.0.0.1:${paxosPort}`);
    set('--http', `127.0.0.1:${httpPort}`);
    set('--data', join(dir, 'node-4'));
    set('--peers', `${args[args.indexOf('--peers') + 1]},4=127.0.0.1:${paxosPort}`);
    const fourth: Spawned = spawnCli(args, { ipc: true });
    track.push(fourth);
    await fourth.waitFor(/"event":"started"/, 15_000);
    const fourthEndpoint = `http://127.0.0.1:${httpPort}`;
    await until(async () => await metric(fourthEndpoint, 'multipaxos_checkpoints_installed_total') >= 1,
      'node 4 installed a checkpoint', 30_000);
    await write(client, acked, 'grown', 40);
    await assertEverywhere([...cluster.endpoints, fourthEndpoint], acked);
  });

test('kill -9 of a receiver in the middle of an install: it restarts into one state or the other and catches up',
  { timeout: 120_000 }, async (t) => {
    const { dir, track, cluster, client } = await startCluster(t, 'kv-checkpoint-kill-install');
    const acked = new Map<string, string>();
    const victimId = 2;
    const victimEndpoint = cluster.endpoints[victimId - 1] as string;
    const victim = await kvServeProcess(dir, victimId);
    assert.ok(victim !== undefined);
    const victimAt = (await status(victimEndpoint))?.groups[0]?.nowInstanceId ?? 0;
    process.kill(victim.pid, 'SIGKILL');
    const survivors = cluster.endpoints.filter((endpoint) => endpoint !== victimEndpoint);
    // Large values, so the snapshot takes a while to send and install.
    const big = new KvClient({ endpoints: survivors, timeoutMs: 10_000 });
    t.after(() => big.close());
    const filler = 'x'.repeat(60_000);
    for (let i = 0; i < 300; i++) {
      const value = `${i}-${filler}`;
      await big.put(`big${i}`, value);
      acked.set(`big${i}`, value);
    }
    await waitCleanedPast(survivors, victimAt);
    await sleep(QUEUED_MESSAGES_EXPIRE_MS);

    const verbose = [...victim.argv.slice(2), '--verbose'];
    const interrupted = spawnCli(verbose, { ipc: true });
    track.push(interrupted);
    const deadline = performance.now() + 30_000;
    while (!/checkpoint received; installing/.test(interrupted.stderr())) {
      if (performance.now() > deadline) {
        const catchUp = JSON.stringify(await Promise.all(cluster.endpoints.map(async (endpoint) => [
          await metric(endpoint, 'multipaxos_catchup_values_sent_total').catch(() => NaN),
          await metric(endpoint, 'multipaxos_catchup_values_received_total').catch(() => NaN),
          await metric(endpoint, 'multipaxos_min_chosen_instance').catch(() => NaN),
          (await status(endpoint))?.groups[0]?.nowInstanceId])));
        assert.fail(`no install began (node 2 was at ${victimAt}; sent, received, min, now: ${catchUp}); ` +
          `stderr:\n${interrupted.stderr()}`);
      }
      await sleep(2);
    }
    interrupted.child.kill('SIGKILL');
    await interrupted.exited;
    t.diagnostic(`killed during the install; last lines: ${interrupted.stderr().trim().split('\n').slice(-2).join(' | ')}`);

    const again = spawnCli(victim.argv.slice(2), { ipc: true });
    track.push(again);
    await again.waitFor(/"event":"started"/, 20_000);
    await write(client, acked, 'after', 20);
    await assertEverywhere(cluster.endpoints, acked);
  });
