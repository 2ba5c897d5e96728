// A full disk under a real KV cluster (`multipaxos cluster up`, three `kv serve` processes): node 3's
// data directory is a 40 MiB tmpfs, filled by another process (dd) while clients write, then freed.
// While it is full, node 3 says so everywhere (every group halted with STORAGE_UNAVAILABLE in /status,
// multipaxos_storage_unavailable{reason="ENOSPC"} 1, 503 STORAGE_UNAVAILABLE for writes and
// linearizable reads), masters nothing, and still serves stale reads; the cluster keeps taking
// writes. Once freed, it resumes by itself (no restart) within a bound, catches up, and every node
// holds the same data, every acknowledged write included. And a node started on a disk with no room
// for its log exits with one line and leaves no temporary file. Needs root (mount); skipped otherwise.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvClient } from '../../src/kv/client.js';
import { KvError } from '../../src/kv/kv-error.js';
import { clusterScope, freeBasePort, killEverything, runCli, startClusterUp } from '../support/cluster-up.js';

/** How long node 3 may take to resume once space is back (its first attempts back off to 8 s). */
const RESUME_BOUND_MS = 30_000;

interface GroupStatus {
  readonly group: number;
  readonly nowInstanceId: number;
  readonly isMaster: boolean;
  readonly halted: string | null;
  readonly storage: { readonly reason: string; readonly message: string } | null;
}

function run(command: string, args: string[]): string | null {
  try {
    execFileSync(command, args, { stdio: 'pipe', timeout: 30_000 });
    return null;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return stderr !== undefined && stderr !== '' ? stderr : String(error);
  }
}

/** Mount a tmpfs of `size` on `path` for the test (unmounted after its processes are killed). */
async function mountTmpfs(t: TestContext, scope: { dir: string; track: Parameters<typeof killEverything>[0];
  undo: (() => unknown)[] }, path: string, size: string): Promise<boolean> {
  await mkdir(path, { recursive: true });
  const failure = process.getuid?.() === 0 ? run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path])
    : 'not running as root';
  if (failure !== null) {
    t.skip(`needs root to mount a tmpfs (${failure})`);
    return false;
  }
  scope.undo.push(async () => {
    await killEverything(scope.track, scope.dir);
    if (run('umount', [path]) !== null) run('umount', ['-l', path]);
  });
  return true;
}

async function groupsOf(endpoint: string): Promise<readonly GroupStatus[] | undefined> {
  try {
    const reply = await fetch(`${endpoint}/status`, { signal: AbortSignal.timeout(2_000) });
    return reply.ok ? (await reply.json() as { groups: GroupStatus[] }).groups : undefined;
  } catch {
    return undefined;
  }
}

async function metricLines(endpoint: string, name: string): Promise<string[]> {
  const text = await (await fetch(`${endpoint}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
  return text.split('\n').filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

async function until(check: () => Promise<boolean>, what: () => string, ms: number): Promise<number> {
  const began = performance.now();
  while (!(await check())) {
    if (performance.now() - began > ms) assert.fail(`timed out after ${ms} ms waiting until ${what()}`);
    await sleep(100);
  }
  return performance.now() - began;
}

/** A request straight to one node that must not be forwarded; its status and error code. */
async function direct(endpoint: string, method: string, path: string, body?: string):
  Promise<{ status: number; error: string | undefined }> {
  const reply = await fetch(`${endpoint}${path}`, {
    method, body, signal: AbortSignal.timeout(10_000),
    headers: { 'content-type': 'application/json', 'x-multipaxos-no-forward': '1' },
  });
  const json = await reply.json() as { error?: string };
  return { status: reply.status, error: json.error };
}

async function localRecord(endpoint: string, key: string): Promise<string> {
  const reply = await fetch(`${endpoint}/v1/kv/${key}?stale=true`, { signal: AbortSignal.timeout(5_000) });
  if (reply.status === 404) return 'absent';
  assert.equal(reply.status, 200, `stale GET ${key} from ${endpoint}`);
  const { value, version } = await reply.json() as { value: string; version: number };
  return `${version}:${value}`;
}

/** Fill the file system at `directory` from another process, to the last block. */
function fillUp(directory: string): void {
  for (const [name, blockSize] of [['filler-big', '1M'], ['filler-small', '4k']] as const) {
    const error = run('dd', ['if=/dev/zero', `of=${join(directory, name)}`, `bs=${blockSize}`]);
    assert.match(error ?? '', /No space left/, `dd ${blockSize} stopped for another reason`);
  }
}

test('a node whose disk fills stops writing cleanly, says so, and resumes by itself once space is back',
  { timeout: 180_000 }, async (t) => {
    const scope = await clusterScope(t, 'disk-full');
    const { dir, track } = scope;
    const nodeDir = join(dir, 'node-3');
    if (!await mountTmpfs(t, scope, nodeDir, '40m')) return;
    const cluster = await startClusterUp({
      dir, json: true, track, flags: ['--groups', '3', '--master-lease', '1000', '--restart=false'],
    });
    const endpoint = cluster.endpoints[2] as string;
    const client = new KvClient({ endpoints: cluster.endpoints, timeoutMs: 5_000 });
    scope.undo.push(() => client.close());

    // One writer, one write at a time: the last acknowledged value of a key is its value, unless a
    // later write of it failed with an unknown outcome.
    const acked = new Map<string, string>();
    const uncertain = new Set<string>();
    const failures = new Map<string, number>();
    let stop = false;
    let written = 0;
    const filler = 'x'.repeat(4_000);
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const key = `k${i % 200}`;
        const value = `${i}-${filler}`;
        try {
          await client.put(key, value);
          acked.set(key, value);
          uncertain.delete(key);
          written++;
        } catch (error) {
          const code = error instanceof KvError ? error.code : String(error);
          failures.set(code, (failures.get(code) ?? 0) + 1);
          if (!(error instanceof KvError) || error.mayHaveBeenApplied) uncertain.add(key);
          await sleep(50);
        }
      }
    })();
    await until(async () => written >= 200, () => `200 writes (${written})`, 30_000);

    fillUp(nodeDir);
    let seen: readonly GroupStatus[] | undefined;
    const haltedAfter = await until(async () => {
      seen = await groupsOf(endpoint);
      return seen !== undefined && seen.every((group) => group.halted === 'STORAGE_UNAVAILABLE');
    }, () => `node 3 reports every group STORAGE_UNAVAILABLE (${JSON.stringify(seen)})`, 60_000);
    t.diagnostic(`every group of node 3 halted ${Math.round(haltedAfter)} ms after the disk filled`);
    for (const group of seen ?? []) {
      assert.equal(group.storage?.reason, 'ENOSPC');
      assert.equal(group.isMaster, false, `node 3 masters no group while it cannot write (group ${group.group})`);
    }
    const gauges = await metricLines(endpoint, 'multipaxos_storage_unavailable');
    assert.deepEqual(gauges.sort(), [0, 1, 2].map((group) =>
      `multipaxos_storage_unavailable{group="${group}",reason="ENOSPC"} 1`));
    // Its answers: a clear code, not NO_MASTER; stale reads go on.
    const put = await direct(endpoint, 'PUT', '/v1/kv/k1', JSON.stringify({ value: 'refused' }));
    assert.deepEqual(put, { status: 503, error: 'STORAGE_UNAVAILABLE' });
    const read = await direct(endpoint, 'GET', '/v1/kv/k1');
    assert.deepEqual(read, { status: 503, error: 'STORAGE_UNAVAILABLE' });
    const stale = await fetch(`${endpoint}/v1/kv/k1?stale=true`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(stale.status, 200, 'stale reads are served while the disk is full');
    // The cluster goes on without it.
    const before = written;
    await until(async () => written >= before + 100, () => `100 more writes while node 3 is full (${written - before})`,
      30_000);

    await rm(join(nodeDir, 'filler-big'));
    await rm(join(nodeDir, 'filler-small'));
    const resumedAfter = await until(async () => {
      seen = await groupsOf(endpoint);
      return seen !== undefined && seen.every((group) => group.halted === null && group.storage === null);
    }, () => `node 3 resumes (${JSON.stringify(seen)})`, RESUME_BOUND_MS);
    t.diagnostic(`node 3 resumed ${Math.round(resumedAfter)} ms after space came back, without a restart`);
    assert.deepEqual((await metricLines(endpoint, 'multipaxos_storage_unavailable')).sort(), [0, 1, 2].map((group) =>
      `multipaxos_storage_unavailable{group="${group}",reason="ENOSPC"} 0`));
    assert.deepEqual(await metricLines(endpoint, 'multipaxos_storage_resumes_total'),
      ['multipaxos_storage_resumes_total 1']);
    // It takes part again: writes through it alone succeed.
    const solo = new KvClient({ endpoints: [endpoint], timeoutMs: 10_000 });
    t.after(() => solo.close());
    for (let i = 0; i < 20; i++) {
      await solo.put(`solo${i}`, `after-${i}`);
      acked.set(`solo${i}`, `after-${i}`);
    }
    const afterResume = written;
    await until(async () => written >= afterResume + 50, () => 'writes after the resume', 30_000);
    stop = true;
    await writer;
    t.diagnostic(`${written} writes acknowledged; failures by code: ${JSON.stringify([...failures])}`);

    // Every node catches up to the same instances and holds the same records; every acknowledged
    // write is there.
    let instances = '';
    await until(async () => {
      const all = await Promise.all(cluster.endpoints.map(groupsOf));
      instances = JSON.stringify(all.map((groups) => groups?.map((group) => group.nowInstanceId)));
      const first = all[0];
      return first !== undefined && all.every((groups) => groups !== undefined &&
        groups.every((group, index) => group.nowInstanceId === first[index]?.nowInstanceId));
    }, () => `every node at the same instances (${instances})`, 30_000);
    const keys = [...new Set([...acked.keys(), ...Array.from({ length: 200 }, (_, i) => `k${i}`)])];
    for (const key of keys) {
      const records = await Promise.all(cluster.endpoints.map((node) => localRecord(node, key)));
      assert.equal(new Set(records).size, 1, `${key} differs between nodes: ${records.map((r) => r.slice(0, 40)).join(' / ')}`);
      const value = acked.get(key);
      if (value !== undefined && !uncertain.has(key)) {
        assert.equal((records[0] as string).replace(/^\d+:/, ''), value, `${key} holds its last acknowledged value`);
      }
    }
    const leftovers = [...await readdir(nodeDir), ...await readdir(join(nodeDir, 'log'))]
      .filter((name) => name.endsWith('.tmp'));
    assert.deepEqual(leftovers, [], 'no temporary file left on node 3');
  });

test('a node started with no room for its log exits with one line and leaves no temporary file',
  { timeout: 60_000 }, async (t) => {
    const scope = await clusterScope(t, 'disk-tiny');
    const data = join(scope.dir, 'node-1');
    if (!await mountTmpfs(t, scope, data, '4m')) return;
    const base = await freeBasePort(1);
    const result = await runCli(['kv', 'serve', '--id', '1', '--listen', `127.0.0.1:${base + 101}`,
      '--http', `127.0.0.1:${base + 1}`, '--peers', `1=127.0.0.1:${base + 101}`, '--data', data], 30_000);
    assert.notEqual(result.code, 0, 'the node does not run');
    const lines = result.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line: ${result.stderr}`);
    assert.match(lines[0] as string, /^multipaxos: cannot start in .*ENOSPC.*needs about 16 MiB free/);
    const names = async (path: string): Promise<string[]> =>
      (await readdir(path, { recursive: true })).map(String);
    assert.deepEqual((await names(data)).filter((name) => name.endsWith('.tmp')), [],
      `no temporary file left: ${(await names(data)).join(', ')}`);
  });
