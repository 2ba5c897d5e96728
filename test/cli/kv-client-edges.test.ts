// The kv client commands against one running `kv serve` node: values from a file or standard input
// up to the 1 MiB limit (an argument cannot carry that much), and what is refused.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KvClient } from '../../src/kv/client.js';
import { MAX_KV_VALUE_BYTES } from '../../src/kv/kv-command.js';
import { runCliWith, spawnCli, type Spawned } from '../support/cluster-up.js';
import { freePort, tempRoot } from '../support/local.js';
import { answer, closeFakeServers, fakeServer } from '../kv/fake-servers.js';

let root = '';
let endpoint = '';
let node: Spawned | undefined;
let client: KvClient | undefined;

before(async () => {
  root = await tempRoot('kv-client-edges');
  const paxos = await freePort();
  const http = await freePort();
  endpoint = `http://127.0.0.1:${http}`;
  node = spawnCli(['kv', 'serve', '--id', '1', '--listen', `127.0.0.1:${paxos}`, '--peers', `1=127.0.0.1:${paxos}`,
    '--http', `127.0.0.1:${http}`, '--data', join(root, 'n1'), '--groups', '2', '--master-lease', '1000', '--json']);
  await node.waitFor(/"event":"started"/, 20_000);
  client = new KvClient({ endpoints: [endpoint], timeoutMs: 15_000 });
  // Wait until both groups serve: a put to each.
  await client.put('warm-0', 'x');
  await client.put('warm-1', 'x');
});

after(async () => {
  client?.close();
  node?.child.kill('SIGTERM');
  if ((await node?.exitWithin(15_000)) === undefined) node?.kill();
});

type Run = { code: number | null; stdout: string; stderr: string };
const kv = async (args: string[], input?: string | Buffer): Promise<Run> =>
  await runCliWith(['kv', ...args, '--endpoints', endpoint], { input });

test('kv put KEY --file PATH stores a value up to the 1 MiB limit, byte for byte', async () => {
  const big = join(root, 'big.txt');
  // Exactly the limit, multi-byte characters included, with a trailing newline that is kept.
  const text = `${'é'.repeat(1000)}${'a'.repeat(MAX_KV_VALUE_BYTES - 2000 - 1)}\n`;
  assert.equal(Buffer.byteLength(text), MAX_KV_VALUE_BYTES);
  await writeFile(big, text);
  const put = await kv(['put', 'big', '--file', big]);
  assert.equal(put.code, 0, put.stderr);
  assert.match(put.stdout, /^OK big version 1$/m);
  assert.equal((await client?.get('big'))?.value, text);
});

test('kv put KEY - takes the value from standard input', async () => {
  const text = `line one\nline two ✓\n${'z'.repeat(300_000)}`;
  const put = await kv(['put', 'piped', '-', '--json'], text);
  assert.equal(put.code, 0, put.stderr);
  assert.deepEqual(JSON.parse(put.stdout), { key: 'piped', version: 1 });
  assert.equal((await client?.get('piped'))?.value, text);
});

test('a file or input that is not UTF-8 or over the limit is refused with one clear line', async () => {
  const binary = join(root, 'binary.bin');
  await writeFile(binary, Buffer.from([0x68, 0x69, 0xff, 0xfe, 0x00]));
  const tooBig = join(root, 'too-big.txt');
  await writeFile(tooBig, 'a'.repeat(MAX_KV_VALUE_BYTES + 1));
  const cases: [string[], string | Buffer | undefined, RegExp][] = [
    [['put', 'k', '--file', binary], undefined, /binary\.bin is not valid UTF-8 text/],
    [['put', 'k', '--file', tooBig], undefined, /too-big\.txt holds more than 1048576 bytes \(1 MiB\)/],
    [['put', 'k', '--file', join(root, 'missing.txt')], undefined, /cannot read .*missing\.txt: no such file/],
    [['put', 'k', '-'], Buffer.from([0xc3, 0x28]), /standard input is not valid UTF-8 text/],
    [['put', 'k', '-'], 'b'.repeat(MAX_KV_VALUE_BYTES + 10), /standard input holds more than 1048576 bytes/],
  ];
  for (const [args, input, message] of cases) {
    const run = await kv(args, input);
    assert.equal(run.code, 1, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trimEnd().split('\n').length, 1, run.stderr);
  }
  assert.equal((await client?.get('k'))?.value, null, 'nothing was written');
  const both = await kv(['put', 'k', 'value', '--file', binary]);
  assert.equal(both.code, 2, 'a VALUE and --file is a usage error');
  assert.match(both.stderr, /expected KEY \(with --file\), got 2 argument/);
  const getFile = await kv(['get', 'k', '--file', binary]);
  assert.equal(getFile.code, 2);
});

test('status: durations in the text, exit 1 when a node does not answer or a group has no master', async () => {
  const healthy = await runCliWith(['status', '--endpoints', endpoint]);
  assert.equal(healthy.code, 0, healthy.stderr);
  const duration = String.raw`(\d+ ms|\d+\.\d s|\d+m \d\ds)`;
  assert.match(healthy.stdout, new RegExp(String.raw`^node 1  ${endpoint}  up ${duration}  g0: instance \d+, ` +
    String.raw`master 1 \(this node\), lease expires in ${duration} \| g1: `, 'm'));
  const json = JSON.parse((await runCliWith(['status', '--endpoints', endpoint, '--json'])).stdout) as
    { ok: boolean; problems: string[]; nodes: { status: { groups: { leaseExpiresInMs: number | null }[] } }[] };
  assert.equal(json.ok, true);
  assert.deepEqual(json.problems, []);
  const lease = json.nodes[0]?.status.groups[0]?.leaseExpiresInMs;
  assert.ok(typeof lease === 'number' && lease >= 0 && lease <= 1_000, `leaseExpiresInMs ${lease}`);

  const gone = `http://127.0.0.1:${await freePort()}`;
  const down = await runCliWith(['status', '--endpoints', `${endpoint},${gone}`]);
  assert.equal(down.code, 1, down.stderr);
  assert.match(down.stdout, new RegExp(`^${gone}  down`, 'm'));
  assert.match(down.stderr, new RegExp(`problem: ${gone} does not answer`));

  // A dropped lease: the only node does not bid again for two leases, so group 1 has no master.
  const host = endpoint.replace('http://', '');
  const drop = await runCliWith(['master', 'drop', '--node', host, '--group', '1']);
  assert.equal(drop.code, 0, drop.stderr);
  const leaderless = await runCliWith(['status', '--endpoints', endpoint, '--json']);
  assert.equal(leaderless.code, 1, leaderless.stdout);
  assert.deepEqual((JSON.parse(leaderless.stdout) as { problems: string[] }).problems, ['group 1 has no master']);
});

test('kv put and del go through a session unless --session=false', async () => {
  const opened = async (): Promise<number> => {
    const text = await (await fetch(`${endpoint}/metrics`)).text();
    return [...text.matchAll(/^multipaxos_kv_requests_total\{op="session",outcome="OK"\} (\d+)$/gm)]
      .reduce((sum, match) => sum + Number(match[1]), 0);
  };
  const before = await opened();
  assert.deepEqual(await kv(['put', 'with-session', 'one']), { code: 0, stdout: 'OK with-session version 1\n', stderr: '' });
  assert.equal(await opened(), before + 1, 'the put opened a session');
  assert.equal((await kv(['put', 'with-session', 'two', '--session=false'])).stdout, 'OK with-session version 2\n');
  assert.equal((await kv(['del', 'with-session', '--session=false'])).code, 0);
  assert.equal(await opened(), before + 1, 'no session with --session=false');
});

test('kv put opens its session for twice its timeout, not the hour a long-lived client gets', async () => {
  const sessionBodies: unknown[] = [];
  const server = await fakeServer((request, response) => {
    if (request.url.startsWith('/v1/sessions')) {
      sessionBodies.push(JSON.parse(request.body));
      answer(response, 200, { group: 0, session: '0.1', ttlMs: 6_000 });
    } else {
      answer(response, 200, { key: 'short', version: 1 });
    }
  });
  try {
    const put = await runCliWith(['kv', 'put', 'short', 'v', '--endpoints', server.endpoint, '--timeout-ms', '3000']);
    assert.equal(put.code, 0, put.stderr);
    assert.deepEqual(sessionBodies, [{ ttlMs: 6_000 }]);
  } finally {
    await closeFakeServers();
  }
});

test('kv list prints the keys of a prefix in order, every page or one (--limit, --after, --json)', async () => {
  for (const key of ['ls/b', 'ls/a', 'ls/c', 'lsx']) assert.equal((await kv(['put', key, `value of ${key}`])).code, 0);
  const all = await kv(['list', 'ls/']);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(all.stdout, 'ls/a\t1\tvalue of ls/a\nls/b\t1\tvalue of ls/b\nls/c\t1\tvalue of ls/c\n');
  const page = await kv(['list', 'ls/', '--limit', '2', '--json']);
  assert.deepEqual(JSON.parse(page.stdout), {
    items: [{ key: 'ls/a', value: 'value of ls/a', version: 1 }, { key: 'ls/b', value: 'value of ls/b', version: 1 }],
    more: true, next: 'ls/b',
  });
  assert.equal((await kv(['list', 'ls/', '--after', 'ls/b'])).stdout, 'ls/c\t1\tvalue of ls/c\n');
  assert.equal((await kv(['list', 'ls/', '--limit', '0'])).code, 2);
  assert.equal((await kv(['list', 'a', 'b'])).code, 2);
});

test('kv watch prints each change of the prefix until Ctrl-C (exit 0); a bad cursor fails, extra words are usage', async () => {
  const watching = async (): Promise<number> => ((await client?.status(endpoint)) as { watches: number }).watches;
  const before = await watching();
  const watch = spawnCli(['kv', 'watch', 'wt/', '--endpoints', endpoint]);
  try {
    const deadline = Date.now() + 15_000;
    while (await watching() === before) {
      assert.ok(Date.now() < deadline, 'kv watch connected');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.equal((await kv(['put', 'wt/a', 'x'])).code, 0);
    assert.equal((await kv(['put', 'other', 'y'])).code, 0);
    assert.equal((await kv(['del', 'wt/a'])).code, 0);
    await watch.waitFor(/wt\/a\t1\tx\nwt\/a\t2\t\(deleted\)\n/, 15_000);
    watch.child.kill('SIGINT');
    const exit = await watch.exited;
    assert.equal(exit.code, 0, watch.stderr());
    assert.equal(watch.stdout(), 'wt/a\t1\tx\nwt/a\t2\t(deleted)\n');
  } finally {
    watch.kill();
  }
  const bad = await kv(['watch', 'wt/', '--cursor', 'nonsense']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /BAD_REQUEST: bad watch cursor/);
  assert.equal((await kv(['watch', 'a', 'b'])).code, 2);
  for (const args of [['put', 'k', 'v'], ['get', 'k'], ['list'], ['del', 'k']]) {
    const refused = await kv([...args, '--cursor', '0:1.0']);
    assert.equal(refused.code, 2, args.join(' '));
    assert.match(refused.stderr, /--cursor is for watch/);
  }
});
