// `multipaxos kv serve` as an operator runs it: settings from a config file with flags that win,
// a one-node cluster that serves, SIGTERM that stops it with status 0, and bad settings that are
// usage errors (exit 2) with a message rather than a stack trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseFlags } from '../../src/cli/flags.js';
import { KvClient } from '../../src/kv/client.js';
import { runCli, spawnCli } from '../support/cluster-up.js';
import { freePort, tempRoot } from '../support/local.js';

test('kv serve takes a config file, flags override it, and SIGTERM stops it with status 0', async () => {
  const root = await tempRoot('kv-serve');
  const paxos = await freePort();
  const http = await freePort();
  const config = join(root, 'node.json');
  await writeFile(config, JSON.stringify({
    id: 1, listen: `127.0.0.1:${paxos}`, peers: `1=127.0.0.1:${paxos}`, http: '127.0.0.1:1', data: join(root, 'n1'),
    groups: 2, 'master-lease': 1000, 'snapshot-interval': 0, 'snapshot-every': 0,
  }));
  // --http on the command line wins over the file's.
  const node = spawnCli(['kv', 'serve', '--config', config, '--http', `127.0.0.1:${http}`, '--json']);
  const client = new KvClient({ endpoints: [`http://127.0.0.1:${http}`], timeoutMs: 10_000 });
  try {
    const started = JSON.parse((await node.waitFor(/^\{.*"event":"started".*\}$/m, 20_000))[0]) as
      Record<string, unknown>;
    assert.equal(started.nodeId, 1);
    assert.equal(started.http, `http://127.0.0.1:${http}`);
    assert.equal(started.groups, 2);
    assert.deepEqual(await client.put('from-config', 'yes'), { key: 'from-config', version: 1 });
    assert.equal((await client.get('from-config')).value, 'yes');
    // An operator's snapshot: durable once the command returns, one per group.
    const snapshot = await runCli(['snapshot', 'create', '--node', `127.0.0.1:${http}`, '--json']);
    assert.equal(snapshot.code, 0, snapshot.stderr);
    type Taken = { group: number; instanceId: number; written: boolean };
    const taken = (JSON.parse(snapshot.stdout) as { snapshots: Taken[] }).snapshots;
    assert.deepEqual(taken.map((one) => [one.group, one.written]), [[0, true], [1, true]]);
    const again = await runCli(['snapshot', 'create', '--node', `127.0.0.1:${http}`, '--group', '1']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /node 1 group 1: (already snapshotted|snapshot) at instance \d+/);
    const badGroup = await runCli(['snapshot', 'create', '--node', `127.0.0.1:${http}`, '--group', '5']);
    assert.equal(badGroup.code, 1);
    assert.match(badGroup.stderr, /error BAD_REQUEST: group 5 is not in \[0, 1\]/);
    node.child.kill('SIGTERM');
    const exit = await node.exitWithin(15_000);
    assert.deepEqual(exit, { code: 0, signal: null }, node.stderr());
  } finally {
    client.close();
    node.kill();
  }
});

test('kv serve refuses bad settings as usage errors', async () => {
  const root = await tempRoot('kv-serve-bad');
  const paxos = await freePort();
  const badConfig = join(root, 'bad.json');
  await writeFile(badConfig, JSON.stringify({ id: 1, colour: 'blue' }));
  const base = ['kv', 'serve', '--id', '1', '--listen', `127.0.0.1:${paxos}`, '--peers', `1=127.0.0.1:${paxos}`,
    '--data', join(root, 'n1')];
  const cases: [string[], RegExp][] = [
    [['kv', 'serve', '--config', badConfig], /unknown setting "colour"/],
    [['kv', 'serve', '--config', join(root, 'missing.json')], /--config/],
    [[...base], /--http is required/],
    [[...base, '--http', '127.0.0.1:0', '--master-lease', '500'], /leaseMs/],
    [[...base, '--http', 'nowhere'], /--http must be HOST:PORT/],
    [[...base, '--http', '127.0.0.1:0', '--http-peers', '2=nowhere'], /--http-peers must be HOST:PORT/],
    [[...base, '--http', '127.0.0.1:0', '--local-address', 'localhost'], /--local-address must be an IP address/],
    [[...base, '--http', '127.0.0.1:0', '--snapshot-every', '-1'], /snapshots.everyInstances must be an integer of at least 0/],
    [[...base, '--http', '127.0.0.1:0', '--inline-write-bytes', '2000000'],
      /option inlineWriteBytes must be an integer in \[0, 1048576\], got 2000000/],
  ];
  for (const [args, message] of cases) {
    const run = await runCli(args);
    assert.equal(run.code, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stderr, /^\s+at /m, 'no stack trace');
  }
});

test('a flag written --name=value keeps every = of its value', () => {
  const flags = parseFlags(['--peers=1=127.0.0.1:7001,2=127.0.0.1:7002', '--groups=3', '--sync=false'],
    { peers: 'string', groups: 'number', sync: 'boolean' });
  assert.deepEqual(flags, { peers: '1=127.0.0.1:7001,2=127.0.0.1:7002', groups: 3, sync: false });
});
