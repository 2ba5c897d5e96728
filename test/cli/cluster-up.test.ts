// `multipaxos cluster up` and the KV commands as a user runs them: the ready line, kv put/get/del
// with their exit statuses and --json, status, plain HTTP to a node that is not the master, SIGINT,
// a restart on the same --dir that keeps the data, a different shape refused, and every --help.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { groupOfKey } from '../../src/kv/key-hash.js';
import {
  killEverything, portIsFree, processesMentioning, runCli, startClusterUp, type ClusterUp, type Spawned,
} from '../support/cluster-up.js';

const LEASE_FLAGS = ['--master-lease', '1000'];
const DEFAULT_GROUPS = 3;

interface RawReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/** What curl -X METHOD -d BODY URL does: one plain HTTP request, no client library. */
async function curl(method: string, url: string, body?: string): Promise<RawReply> {
  return await new Promise((resolve, reject) => {
    const headers: Record<string, string> = body === undefined ? {} : { 'content-type': 'application/json' };
    const outgoing = request(url, { method, headers, timeout: 10_000 }, (incoming) => {
      const chunks: Buffer[] = [];
      incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
      incoming.once('error', reject);
      incoming.once('end', () => resolve({
        status: incoming.statusCode ?? 0, headers: incoming.headers,
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown,
      }));
    });
    outgoing.once('timeout', () => outgoing.destroy(new Error(`${method} ${url}: no answer`)));
    outgoing.once('error', reject);
    outgoing.end(body);
  });
}

interface StatusJson {
  readonly nodes: {
    readonly endpoint: string;
    readonly up: boolean;
    readonly status?: {
      readonly nodeId: number;
      readonly groups: { readonly group: number; readonly serving: boolean }[];
    };
  }[];
}

/** The --masters each kv serve process under `dir` was started with, by node id. */
async function mastersFlags(dir: string): Promise<string[]> {
  const serving = (await processesMentioning(dir)).filter(({ argv }) => argv.includes('serve'));
  const flagOf = (argv: readonly string[], flag: string): string => argv[argv.indexOf(flag) + 1] ?? '';
  return serving.sort((a, b) => Number(flagOf(a.argv, '--id')) - Number(flagOf(b.argv, '--id')))
    .map(({ argv }) => flagOf(argv, '--masters'));
}

/** SIGINT, as Ctrl-C: cluster up must exit 0 within 20 s, print that it stopped and leave no kv serve behind. */
async function interrupt(cluster: ClusterUp, dir: string): Promise<void> {
  cluster.child.kill('SIGINT');
  const exit = await cluster.exitWithin(20_000);
  assert.deepEqual(exit, { code: 0, signal: null }, `cluster up: ${cluster.stdout()}\n${cluster.stderr()}`);
  assert.match(cluster.stdout(), /^stopping\.\.\.$/m);
  assert.match(cluster.stdout(), /^stopped$/m);
  assert.deepEqual(await processesMentioning(dir), [], 'processes left behind');
}

describe('multipaxos cluster up and the kv commands', { timeout: 90_000 }, () => {
  const track: Spawned[] = [];
  let dir = '';
  let endpoints: string[] = [];
  let basePort = 0;
  after(async () => {
    if (dir === '') return;
    await killEverything(track, dir);
    await rm(dir, { recursive: true, force: true });
  });
  const kv = async (...args: string[]) => await runCli([...args, '--endpoints', endpoints.join(',')]);

  test('ready line, put/get/del with their exit statuses, --json, status, HTTP to a non-master, SIGINT', async () => {
    dir = await mkdtemp(join(tmpdir(), 'cluster-up-cli-'));
    const cluster = await startClusterUp({ dir, json: false, flags: LEASE_FLAGS, track });
    ({ endpoints, basePort } = cluster);
    assert.deepEqual(endpoints, [1, 2, 3].map((id) => `http://127.0.0.1:${basePort + id}`));
    assert.match(cluster.stdout(), /^multipaxos cluster: 3 nodes, 3 groups, data in /m);
    assert.match(cluster.stdout(), new RegExp(`^  node 1  http://127\\.0\\.0\\.1:${basePort + 1}  ` +
      `paxos 127\\.0\\.0\\.1:${basePort + 101}  pid \\d+$`, 'm'));
    assert.match(cluster.stdout(), new RegExp(`^  status page: http://127\\.0\\.0\\.1:${basePort + 1}/ui `, 'm'));
    // cluster up tells every node where the others' HTTP APIs are: the status page sees them all.
    const overview = await curl('GET', `${endpoints[1] as string}/v1/cluster-status`);
    assert.equal(overview.status, 200);
    assert.deepEqual((overview.body as { nodes: { nodeId: number; endpoint: string; reachable: boolean }[] }).nodes
      .map(({ nodeId, endpoint, reachable }) => [nodeId, endpoint, reachable]),
    endpoints.map((endpoint, index) => [index + 1, endpoint, true]));

    let run = await kv('kv', 'put', 'a', '1');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, 'OK a version 1\n');
    run = await kv('kv', 'get', 'a');
    assert.deepEqual([run.code, run.stdout], [0, '1\n'], run.stderr);
    run = await kv('kv', 'get', 'missing');
    assert.deepEqual([run.code, run.stdout], [3, ''], run.stderr);
    assert.match(run.stderr, /missing is not set \(version 0\)/);
    run = await kv('kv', 'put', 'a', '2', '--version', '0');
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /^error VERSION_CONFLICT: key "a" is at version 1, not 0$/m);
    run = await kv('kv', 'get', 'a');
    assert.deepEqual([run.code, run.stdout], [0, '1\n'], 'a refused write changed nothing');
    run = await kv('kv', 'del', 'a');
    assert.deepEqual([run.code, run.stdout], [0, 'OK a deleted, version 2\n'], run.stderr);
    run = await kv('kv', 'get', 'a');
    assert.equal(run.code, 3, run.stderr);
    assert.match(run.stderr, /a is not set \(version 2\)/);
    run = await kv('kv', 'del', 'a');
    assert.equal(run.code, 3, 'deleting a key that is not set changes nothing: exit 3, like get');
    assert.match(run.stderr, /^a is not set \(version 2\); nothing deleted$/m);

    // --json: every answer, including errors and a missing key, is one JSON object on standard output.
    run = await kv('kv', 'put', 'kept', 'still here', '--json');
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout), { key: 'kept', version: 1 });
    run = await kv('kv', 'get', 'kept', '--json');
    assert.deepEqual([run.code, JSON.parse(run.stdout)], [0, { key: 'kept', value: 'still here', version: 1 }]);
    run = await kv('kv', 'get', 'a', '--json');
    assert.deepEqual([run.code, JSON.parse(run.stdout)], [3, { key: 'a', value: null, version: 2 }]);
    // A deadline under 2.5 s once sent a fractional x-multipaxos-timeout-ms, which the server refused.
    run = await kv('kv', 'get', 'kept', '--timeout-ms', '1999');
    assert.deepEqual([run.code, run.stdout], [0, 'still here\n'], run.stderr);
    run = await kv('kv', 'put', 'kept', 'x', '--version', '7', '--json');
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout),
      { error: 'VERSION_CONFLICT', message: 'key "kept" is at version 1, not 7', mayHaveBeenApplied: false, version: 1 });
    run = await kv('kv', 'del', 'gone', '--json');
    assert.deepEqual([run.code, JSON.parse(run.stdout)], [3, { key: 'gone', version: 0, deleted: false }], run.stderr);
    run = await kv('kv', 'get', 'kept', '--stale', '--json');
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { key: string }).key, 'kept');
    run = await kv('kv', 'put', 'doomed', 'x');
    assert.equal(run.code, 0, run.stderr);
    run = await kv('kv', 'del', 'doomed', '--json');
    assert.deepEqual([run.code, JSON.parse(run.stdout)], [0, { key: 'doomed', version: 2, deleted: true }], run.stderr);

    run = await kv('status', '--json');
    assert.equal(run.code, 0, run.stderr);
    const status = JSON.parse(run.stdout) as StatusJson;
    assert.deepEqual(status.nodes.map((node) => [node.endpoint, node.up, node.status?.nodeId]),
      endpoints.map((endpoint, index) => [endpoint, true, index + 1]));
    run = await kv('status');
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout.trim().split('\n').length, 3, run.stdout);
    assert.match(run.stdout, new RegExp(`^node 2  ${endpoints[1]}  up \\S+( \\S+)?  g0: instance \\d+, master \\d`, 'm'));

    // A local cluster's masters start out together on node 1 unless --masters says otherwise.
    assert.deepEqual(await mastersFlags(dir), ['together', 'together', 'together']);

    // A plain HTTP PUT to a node that is not the master of the key's group is forwarded to the master.
    const group = groupOfKey('raw', DEFAULT_GROUPS);
    const master = status.nodes.find((node) => node.status?.groups[group]?.serving === true);
    assert.ok(master !== undefined, `group ${group} has a serving master: ${JSON.stringify(status)}`);
    const other = endpoints.find((endpoint) => endpoint !== master.endpoint) as string;
    const put = await curl('PUT', `${other}/v1/kv/raw`, JSON.stringify({ value: 'raw value' }));
    assert.deepEqual([put.status, put.body], [200, { key: 'raw', version: 1 }]);
    assert.equal(put.headers['x-multipaxos-endpoint'], master.endpoint, 'answered by the master');
    const get = await curl('GET', `${other}/v1/kv/raw`);
    assert.deepEqual([get.status, get.body], [200, { key: 'raw', value: 'raw value', version: 1 }]);
    const missing = await curl('GET', `${other}/v1/kv/nothing-here`);
    assert.equal(missing.status, 404);
    assert.equal((missing.body as { error: string }).error, 'KEY_NOT_FOUND');

    await interrupt(cluster, dir);
  });

  test('cluster up again on the same --dir resumes its shape and keeps the data', async () => {
    assert.ok(dir !== '' && basePort !== 0, 'the first test ran');
    const shape = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(shape, { nodes: 3, groups: DEFAULT_GROUPS, basePort, host: '127.0.0.1', masterLeaseMs: 1000 });
    // No --base-port: the saved one is used.
    const cluster = await startClusterUp({
      dir, json: true, flags: [...LEASE_FLAGS, '--masters', 'spread'], track, reuseBasePort: basePort,
    });
    assert.deepEqual(cluster.endpoints, endpoints);
    assert.deepEqual(await mastersFlags(dir), ['spread', 'spread', 'spread'], 'passed on to every node');
    for (const line of cluster.stdout().trim().split('\n')) JSON.parse(line);
    // Ready means any endpoint serves any key at once: every node knew where each group's master was.
    const ready = cluster.stdout().trim().split('\n').map((line) => JSON.parse(line) as { event: string; routing?: number[] })
      .find((line) => line.event === 'ready');
    assert.deepEqual(ready?.routing, [1, 2, 3]);
    let run = await kv('kv', 'get', 'kept');
    assert.deepEqual([run.code, run.stdout], [0, 'still here\n'], run.stderr);
    run = await kv('kv', 'get', 'raw');
    assert.deepEqual([run.code, run.stdout], [0, 'raw value\n'], run.stderr);
    run = await kv('kv', 'get', 'a', '--json');
    assert.deepEqual([run.code, JSON.parse(run.stdout)], [3, { key: 'a', value: null, version: 2 }], 'still deleted');
    cluster.child.kill('SIGINT');
    assert.deepEqual(await cluster.exitWithin(20_000), { code: 0, signal: null }, cluster.stderr());
    const lines = cluster.stdout().trim().split('\n').map((line) => JSON.parse(line) as { event: string });
    assert.equal(lines.at(-1)?.event, 'stopped');
    assert.deepEqual(await processesMentioning(dir), []);
  });

  test('cluster up with another --nodes on the same --dir is refused (exit 2) and starts nothing', async () => {
    assert.ok(dir !== '', 'the first test ran');
    const run = await runCli(['cluster', 'up', '--dir', dir, '--nodes', '5', '--base-port', String(basePort)]);
    assert.equal(run.code, 2, run.stdout);
    assert.match(run.stderr, /holds a cluster of 3 nodes and 3 groups; start it with those, or use another --dir/);
    assert.deepEqual(await processesMentioning(dir), []);
    const shape = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(shape.nodes, 3, 'the saved shape is unchanged');
  });
});

test('every --help exits 0 with its usage; kv put without a VALUE is a usage error (exit 2)', async () => {
  const helps: [string[], RegExp][] = [
    [['cluster', '--help'], /^usage: multipaxos cluster up /m],
    [['cluster', 'up', '--help'], /^usage: multipaxos cluster up /m],
    [['kv', '--help'], /^usage: multipaxos kv serve [\s\S]*^usage: multipaxos kv put KEY VALUE/m],
    [['kv', 'serve', '--help'], /^usage: multipaxos kv serve --id N/m],
    [['kv', 'put', '--help'], /^usage: multipaxos kv put KEY VALUE/m],
    [['status', '--help'], /^usage: multipaxos status /m],
  ];
  const runs = await Promise.all(helps.map(async ([args]) => await runCli(args)));
  runs.forEach((run, index) => {
    const [args, usage] = helps[index] as [string[], RegExp];
    assert.equal(run.code, 0, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stdout, usage, args.join(' '));
  });
  const missing = await runCli(['kv', 'put', 'a', '--endpoints', 'http://127.0.0.1:9']);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /expected KEY VALUE, got 1 argument\(s\)/);
  assert.match(missing.stderr, /^run 'multipaxos kv put --help' for usage$/m);
  assert.doesNotMatch(missing.stderr, /usage: multipaxos/, 'no command usage on a usage error');
  assert.equal(missing.stdout, '');
  const dir = await mkdtemp(join(tmpdir(), 'cluster-up-masters-'));
  try {
    const placements = await Promise.all([
      runCli(['cluster', 'up', '--dir', dir, '--masters', 'sideways']),
      runCli(['kv', 'serve', '--id', '1', '--listen', '127.0.0.1:9', '--http', '127.0.0.1:9', '--peers', '1=127.0.0.1:9',
        '--data', join(dir, 'serve'), '--masters', 'sideways']),
    ]);
    for (const run of placements) {
      assert.equal(run.code, 2, run.stderr);
      assert.match(run.stderr, /--masters must be spread or together; got "sideways"/);
    }
    assert.deepEqual(await processesMentioning(dir), [], 'nothing started');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('kill -9 of cluster up: its kv serve nodes notice and stop by themselves', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cluster-up-orphans-'));
  const track: Spawned[] = [];
  t.after(async () => {
    await killEverything(track, dir);
    await rm(dir, { recursive: true, force: true });
  });
  const cluster = await startClusterUp({ dir, json: false, flags: LEASE_FLAGS, track });
  const nodes = (await processesMentioning(dir)).filter(({ argv }) => argv.includes('serve'));
  assert.deepEqual(nodes.map(({ ppid }) => ppid), [cluster.child.pid, cluster.child.pid, cluster.child.pid]);
  cluster.kill();
  await cluster.exited;
  const deadline = Date.now() + 15_000;
  let left = nodes;
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(100);
    left = await processesMentioning(dir);
  }
  assert.deepEqual(left, [], 'nodes outlived their cluster up');
  for (const id of [1, 2, 3]) {
    const ports = [cluster.basePort + id, cluster.basePort + 100 + id];
    for (const port of ports) assert.ok(await portIsFree(port), `port ${port} still taken: the next npm start would fail`);
  }
});
