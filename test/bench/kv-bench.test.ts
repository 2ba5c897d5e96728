import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep, setImmediate as tick } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { percentile, runClosedLoop } from '../../bench/closed-loop.js';
import { etcdPut, findEtcd, startEtcdCluster } from '../../bench/etcd-cluster.js';
import { KV_USAGE, parseKvFlags, randomLetters } from '../../bench/kv-bench.js';
import { UsageError } from '../../src/cli/flags.js';

const BENCH = fileURLToPath(new URL('../../bench/main.js', import.meta.url));
const ETCD = findEtcd();

/** Processes whose command line mentions `text` (Linux only; empty elsewhere). */
function processesMentioning(text: string): string[] {
  if (!existsSync('/proc')) return [];
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (commandLine.includes(text)) found.push(`${entry}: ${commandLine}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return found;
}

test('runClosedLoop keeps one put in flight per client and counts every measured one', async () => {
  const calls = new Map<number, number[]>();
  let inFlight = 0;
  let maxInFlight = 0;
  const result = await runClosedLoop({
    clients: 4, durationMs: 300, warmupMs: 100,
    put: async (clientIndex, sequence) => {
      const list = calls.get(clientIndex) ?? [];
      list.push(sequence);
      calls.set(clientIndex, list);
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await sleep(2);
      inFlight--;
    },
  });
  assert.deepEqual([...calls.keys()].sort(), [0, 1, 2, 3]);
  for (const list of calls.values()) assert.deepEqual(list, list.map((_, index) => index), 'sequences 0, 1, 2, …');
  assert.equal(maxInFlight, 4);
  const total = [...calls.values()].reduce((sum, list) => sum + list.length, 0);
  assert.ok(result.ops > 0 && result.ops < total, `${result.ops} measured of ${total} calls`);
  assert.equal(result.errors, 0);
  assert.ok(result.durationMs >= 300 && result.durationMs < 1000, `durationMs ${result.durationMs}`);
  assert.ok(Math.abs(result.opsPerSec - result.ops / (result.durationMs / 1000)) < 1e-6);
  assert.ok(result.p50Ms >= 1.5, `p50 ${result.p50Ms} ms for 2 ms puts`);
  assert.ok(result.p50Ms <= result.p99Ms, JSON.stringify(result));
});

test('runClosedLoop counts failed puts as errors instead of throwing', async () => {
  const result = await runClosedLoop({
    clients: 3, durationMs: 200, warmupMs: 0,
    put: async (_clientIndex, sequence) => {
      if (sequence % 4 === 1) throw new Error('fails at once');
      await tick();
      if (sequence % 4 === 3) throw new Error('fails later');
    },
  });
  assert.ok(result.ops > 0, JSON.stringify(result));
  assert.ok(result.errors > 0, JSON.stringify(result));
  const share = result.errors / (result.errors + result.ops);
  assert.ok(share > 0.4 && share < 0.6, `half the puts fail: ${share}`);
  assert.equal(result.warmupErrors, 0);
  // Each distinct message once, so a run can say why its puts failed.
  assert.deepEqual([...result.errorSamples].sort(), ['fails at once', 'fails later']);
});

test('runClosedLoop leaves the warm-up out of the counts and the latencies', async () => {
  const warmupMs = 300;
  const startedAt = performance.now();
  let warmupCalls = 0;
  const result = await runClosedLoop({
    clients: 2, durationMs: 200, warmupMs,
    put: async () => {
      if (performance.now() < startedAt + warmupMs) {
        warmupCalls++;
        await sleep(60);
        if (warmupCalls % 2 === 0) throw new Error('warm-up failure');
        return;
      }
      await tick();
    },
  });
  assert.ok(warmupCalls >= 4, `warm-up calls: ${warmupCalls}`);
  assert.ok(result.warmupErrors >= 1, JSON.stringify(result));
  assert.equal(result.errors, 0);
  assert.ok(result.ops > 100, JSON.stringify(result));
  assert.ok(result.p99Ms < 60, `no 60 ms warm-up put is measured: ${JSON.stringify(result)}`);
});

test('runClosedLoop rejects nonsense options and reports NaN percentiles when nothing succeeded', async () => {
  await assert.rejects(runClosedLoop({ clients: 0, durationMs: 10, warmupMs: 0, put: () => Promise.resolve() }),
    RangeError);
  const result = await runClosedLoop({ clients: 1, durationMs: 50, warmupMs: 0,
    put: () => Promise.reject(new Error('down')) });
  assert.equal(result.ops, 0);
  assert.ok(result.errors > 0);
  assert.ok(Number.isNaN(result.p50Ms) && Number.isNaN(result.p99Ms));
});

test('percentile takes the nearest rank of a sorted array', () => {
  const values = Array.from({ length: 100 }, (_, index) => index + 1);
  assert.equal(percentile(values, 50), 50);
  assert.equal(percentile(values, 99), 99);
  assert.equal(percentile(values, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([1, 2, 3], 50), 2);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('randomLetters makes ASCII letters of the requested size', () => {
  const value = randomLetters(2048);
  assert.equal(Buffer.byteLength(value), 2048);
  assert.match(value, /^[A-Za-z]+$/);
});

test('kv flags: defaults, lists, and the order of systems', () => {
  const defaults = parseKvFlags([]);
  assert.deepEqual(defaults.valueSizes, [100, 2048]);
  assert.deepEqual(defaults.clients, [1, 16, 64, 256]);
  assert.equal(defaults.durationMs, 5000);
  assert.equal(defaults.warmupMs, 1000);
  assert.deepEqual(defaults.systems, ['ours', 'ours-no-sessions', 'etcd', 'ours-http', 'no-consensus', 'etcd-http']);
  assert.equal(defaults.groups, 1);
  assert.equal(defaults.httpGroups, 3, 'ours-http runs a default cluster up');
  assert.equal(defaults.json, false);
  assert.equal(defaults.etcdBin, undefined);
  assert.equal(defaults.nodeCpuProfileDir, undefined);
  assert.equal(parseKvFlags(['--node-cpu-prof', 'profiles']).nodeCpuProfileDir, 'profiles');
  assert.equal(defaults.masters, undefined, 'cluster up\'s own default');
  assert.equal(parseKvFlags(['--masters', 'spread']).masters, 'spread');
  const custom = parseKvFlags(['--values', '64, 64,1024', '--clients=8', '--systems', 'etcd,ours', '--json',
    '--duration-ms', '250', '--warmup-ms', '0', '--groups', '4', '--etcd-bin', '/opt/etcd']);
  assert.deepEqual(custom.valueSizes, [64, 1024]);
  assert.deepEqual(custom.clients, [8]);
  assert.deepEqual(custom.systems, ['ours', 'etcd']);
  assert.equal(custom.json, true);
  assert.equal(custom.durationMs, 250);
  assert.equal(custom.warmupMs, 0);
  assert.equal(custom.groups, 4);
  assert.equal(custom.etcdBin, '/opt/etcd');
  assert.deepEqual(parseKvFlags(['--systems', 'etcd']).systems, ['etcd']);
  assert.deepEqual(parseKvFlags(['--systems', 'ours-no-sessions,ours']).systems, ['ours', 'ours-no-sessions']);
});

test('kv flags: malformed ones are usage errors', () => {
  const bad = [
    ['--clients', 'abc'], ['--clients', '0'], ['--clients', '4,'], ['--clients', '1.5'], ['--values', '-1'],
    ['--values', ''], ['--systems', 'zookeeper'], ['--systems', ''], ['--duration-ms', '0'], ['--warmup-ms', '-1'],
    ['--groups', '0'], ['--duration-ms', 'soon'], ['--bogus'], ['--clients'], ['stray'], ['--masters', 'sideways'],
  ];
  for (const argv of bad) assert.throws(() => parseKvFlags(argv), UsageError, argv.join(' '));
});

test('npm run bench -- kv: bad flags exit with 2 and the usage; --help prints it', () => {
  for (const argv of [['--clients', 'lots'], ['--systems', 'redis'], ['--nope']]) {
    const run = spawnSync(process.execPath, [BENCH, 'kv', ...argv], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 2, `${argv.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, /npm run bench -- kv/);
    assert.equal(run.stdout, '');
  }
  const help = spawnSync(process.execPath, [BENCH, 'kv', '--help'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(help.status, 0, help.stderr);
  assert.equal(help.stdout.trim(), KV_USAGE.trim());
});

test('kv --systems etcd with no etcd binary says how to install it and fails', () => {
  const run = spawnSync(process.execPath, [BENCH, 'kv', '--systems', 'etcd', '--etcd-bin', '/nonexistent/etcd'],
    { encoding: 'utf8', timeout: 30_000 });
  assert.equal(run.status, 1, run.stderr);
  assert.match(run.stderr, /etcd not found.*apt-get install etcd-server/);
  assert.equal(run.stdout, '');
});

test('etcd cluster: three healthy members, puts to the leader, non-2xx is an error, stop cleans up',
  { timeout: 90_000 }, async (t) => {
    if (ETCD === undefined) {
      t.skip('etcd not installed');
      return;
    }
    const root = await mkdtemp(join(tmpdir(), 'kv-bench-cluster-test-'));
    try {
      const cluster = await startEtcdCluster({ binary: ETCD, dataRoot: root });
      try {
        assert.equal(cluster.endpoints.length, 3);
        assert.equal(processesMentioning(root).length, process.platform === 'linux' ? 3 : 0);
        const leader = await cluster.leaderEndpoint();
        assert.ok(cluster.endpoints.includes(leader), leader);
        await etcdPut(leader, 'bench-0-0', 'hello');
        await assert.rejects(etcdPut(leader, '', 'no key'), /HTTP 400/);
      } finally {
        await cluster.stop();
      }
      assert.deepEqual(await readdir(root), [], 'the data directory is removed');
      assert.deepEqual(processesMentioning(root), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

test('etcd cluster: members that never get healthy fail the start in bounded time, and are killed', async () => {
  const root = await mkdtemp(join(tmpdir(), 'kv-bench-fake-etcd-'));
  try {
    // Stays up, says a little, never listens: stands in for a member that cannot form a cluster.
    const fake = join(root, 'fake-etcd');
    await writeFile(fake, '#!/bin/sh\necho "fake etcd $2 up"\nexec sleep 120\n');
    await chmod(fake, 0o755);
    const began = performance.now();
    await assert.rejects(startEtcdCluster({ binary: fake, dataRoot: root, startTimeoutMs: 1500 }),
      (error: Error) => /not healthy with a leader within 1.5 s/.test(error.message) &&
        /fake etcd member0 up/.test(error.message));
    assert.ok(performance.now() - began < 15_000);
    assert.deepEqual(await readdir(root), ['fake-etcd'], 'the data directory is removed');
    assert.deepEqual(processesMentioning(root), []);
    // One that exits at once is reported as such, without waiting for the timeout.
    const quitter = join(root, 'quitter');
    await writeFile(quitter, '#!/bin/sh\necho "cannot start" >&2\nexit 3\n');
    await chmod(quitter, 0o755);
    await assert.rejects(startEtcdCluster({ binary: quitter, dataRoot: root, startTimeoutMs: 20_000 }),
      /etcd failed to start: member\d exited \(code 3\)[^]*cannot start/);
    assert.deepEqual((await readdir(root)).sort(), ['fake-etcd', 'quitter']);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('kv --systems etcd --json: a short real run prints one well-formed line and leaves nothing behind',
  { timeout: 90_000 }, async (t) => {
    if (ETCD === undefined) {
      t.skip('etcd not installed');
      return;
    }
    const root = await mkdtemp(join(tmpdir(), 'kv-bench-test-'));
    try {
      const run = spawnSync(process.execPath, [BENCH, 'kv', '--systems', 'etcd', '--values', '100', '--clients', '4',
        '--duration-ms', '500', '--warmup-ms', '100', '--json'],
      { encoding: 'utf8', timeout: 80_000, env: { ...process.env, TMPDIR: root } });
      assert.equal(run.status, 0, run.stderr);
      const lines = run.stdout.trim().split('\n');
      assert.equal(lines.length, 1, run.stdout);
      const line = JSON.parse(lines[0] as string) as Record<string, unknown>;
      assert.equal(line.system, 'etcd');
      assert.equal(line.valueBytes, 100);
      assert.equal(line.clients, 4);
      for (const field of ['ops', 'opsPerSec', 'p50Ms', 'p99Ms', 'durationMs']) {
        assert.ok(typeof line[field] === 'number' && (line[field] as number) > 0, `${field}: ${lines[0]}`);
      }
      assert.equal(line.errors, 0);
      assert.ok((line.p50Ms as number) <= (line.p99Ms as number), lines[0]);
      assert.ok((line.durationMs as number) >= 500, lines[0]);
      assert.deepEqual(await readdir(root), [], 'the data directory is removed');
      assert.deepEqual(processesMentioning(root), []);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

test('kv: SIGINT in the middle of an etcd run kills every member and removes the data', { timeout: 90_000 },
  async (t) => {
    if (ETCD === undefined) {
      t.skip('etcd not installed');
      return;
    }
    const root = await mkdtemp(join(tmpdir(), 'kv-bench-sigint-test-'));
    const child = spawn(process.execPath, [BENCH, 'kv', '--systems', 'etcd', '--values', '100', '--clients', '2',
      '--duration-ms', '60000', '--warmup-ms', '0', '--json'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: root } });
    try {
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      let stderr = '';
      child.stderr.setEncoding('utf8');
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no cell started within 60 s: ${stderr}`)), 60_000);
        child.stderr.on('data', (chunk: string) => {
          stderr += chunk;
          if (stderr.includes('clients…')) {
            clearTimeout(timer);
            resolve();
          }
        });
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`the bench ended early: ${stderr}`));
        });
      });
      if (process.platform === 'linux') assert.equal(processesMentioning(root).length, 3);
      child.kill('SIGINT');
      assert.equal(await exited, 130);
      assert.deepEqual(processesMentioning(root), []);
      assert.deepEqual(await readdir(root), [], 'the data directory is removed');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await rm(root, { recursive: true, force: true });
    }
  });

test('npm run bench -- kv --systems ours: a short real run against our cluster prints one JSON line per cell', () => {
  const run = spawnSync(process.execPath, [BENCH, 'kv', '--systems', 'ours', '--values', '100', '--clients', '1,4',
    '--duration-ms', '300', '--warmup-ms', '50', '--system-warmup-ms', '0', '--json'],
  { encoding: 'utf8', timeout: 90_000 });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  assert.deepEqual(lines.map((line) => [line.system, line.valueBytes, line.clients]), [['ours', 100, 1], ['ours', 100, 4]]);
  for (const line of lines) {
    assert.ok((line.ops as number) > 0 && (line.opsPerSec as number) > 0, JSON.stringify(line));
    // The three nodes' CPU a put, read from /proc (null where there is none).
    if (existsSync('/proc/self/stat')) assert.ok((line.serverCpuMsPerPut as number) > 0, JSON.stringify(line));
    else assert.equal(line.serverCpuMsPerPut, null);
    assert.equal(line.errors, 0);
    assert.ok((line.p50Ms as number) > 0 && (line.p99Ms as number) >= (line.p50Ms as number));
  }
});

test('npm run bench -- kv --systems ours-http,no-consensus: plain HTTP over every node, and the table with ratios', () => {
  const run = spawnSync(process.execPath, [BENCH, 'kv', '--systems', 'no-consensus,ours-http', '--values', '100',
    '--clients', '4', '--duration-ms', '400', '--warmup-ms', '50', '--system-warmup-ms', '0'],
  { encoding: 'utf8', timeout: 90_000 });
  assert.equal(run.status, 0, run.stderr);
  const row = run.stdout.split('\n').find((line) => line.startsWith('| 100 | 4 |'));
  assert.ok(row !== undefined, run.stdout);
  const cells = row.split('|').map((cell) => cell.trim()).slice(1, -1);
  const [oursOps, , etcdOps, , bareOps, , toEtcd, toBare, errors] = cells.slice(2);
  assert.ok(Number(oursOps) > 0 && Number(bareOps) > 0, row);
  assert.equal(etcdOps, '-', 'etcd-http was not asked for');
  assert.equal(toEtcd, '-');
  // The ratio is of the unrounded rates; the table shows them rounded (452 / 2916 can read 0.16).
  assert.match(toBare as string, /^\d+\.\d\d$/, row);
  assert.ok(Math.abs(Number(toBare) - Number(oursOps) / Number(bareOps)) <= 0.011, row);
  assert.equal(errors, '0 / - / 0', `${row}\n${run.stderr}`);
  // A default cluster up: three groups, so most puts land on a node that must forward them.
  assert.match(run.stderr,
    /ours-http \(3 nodes, 3 group\(s\), plain HTTP spread over the nodes, masters as cluster up starts them\)/);
});

test('kv --node-cpu-prof DIR: every node of our cluster writes a CPU profile there when it stops', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'multipaxos-kv-prof-'));
  try {
    const run = spawnSync(process.execPath, [BENCH, 'kv', '--systems', 'ours-http', '--values', '100', '--clients', '2',
      '--duration-ms', '300', '--warmup-ms', '50', '--system-warmup-ms', '0', '--json', '--node-cpu-prof', dir],
    { encoding: 'utf8', timeout: 90_000 });
    assert.equal(run.status, 0, run.stderr);
    const files = readdirSync(dir).sort();
    for (const id of [1, 2, 3]) {
      const file = files.find((name) => name.startsWith(`node-${id}-`) && name.endsWith('.cpuprofile'));
      assert.ok(file !== undefined, `node ${id}'s profile is among ${files.join(', ')}`);
      const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes?: unknown[]; samples?: unknown[] };
      assert.ok((profile.nodes?.length ?? 0) > 0 && (profile.samples?.length ?? 0) > 0, `${file} has samples`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('plainHttpLoad spreads puts round-robin over the endpoints and fails on a non-2xx answer', async () => {
  const { createServer } = await import('node:http');
  const { plainHttpLoad } = await import('../../bench/plain-http-load.js');
  const seen: string[] = [];
  const servers = await Promise.all([0, 1, 2].map((index) => new Promise<import('node:http').Server>((resolve) => {
    const server = createServer((request, response) => {
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => { body += chunk; });
      request.on('end', () => {
        seen.push(`${index} ${request.method ?? ''} ${request.url ?? ''} ${body}`);
        response.writeHead(body.includes('refuse') ? 409 : 200, { 'content-type': 'application/json' });
        response.end('{"ok":true}');
      });
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  })));
  const endpoints = servers.map((server) => `http://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`);
  const load = plainHttpLoad({ endpoints, clients: 2,
    encode: (key, value) => ({ method: 'PUT', path: `/v1/kv/${key}`, body: JSON.stringify({ value }) }) });
  try {
    for (let index = 0; index < 6; index++) await load.put(`k${index}`, 'v');
    assert.deepEqual(seen.map((line) => Number(line.split(' ')[0])), [0, 1, 2, 0, 1, 2]);
    assert.equal(seen[0], '0 PUT /v1/kv/k0 {"value":"v"}');
    await assert.rejects(load.put('k', 'refuse'), /HTTP 409/);
  } finally {
    load.close();
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
});
