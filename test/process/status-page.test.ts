// The operator's view of a real three-node KV cluster (three `kv serve` processes on loopback):
// `multipaxos status --watch` printing successive views to a pipe until SIGINT (exit 0), and the
// status page at /ui in a real headless Chromium (Debian's, driven by playwright-core): what it
// shows at start, after writes, and after a node is SIGKILLed; screenshots are saved under
// test-output/ (their paths are printed). Without /usr/bin/chromium the browser test is skipped.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterReport } from '../../src/kv/cluster-status.js';
import { KvClient } from '../../src/kv/client.js';
import { fetchClusterStatus } from '../../src/cli/status-watch.js';
import { CLI, killEverything, spawnCli, type Spawned } from '../support/cluster-up.js';
import { freePort } from '../support/local.js';

const CHROMIUM = '/usr/bin/chromium';
const NODES = [1, 2, 3];
const GROUPS = 3;
const OUTPUT_DIR = resolve('test-output');

/** Polls `read` until `check` holds; fails with the last value seen after `timeoutMs`. */
async function eventually<T>(
  what: string, read: () => Promise<T>, check: (value: T) => boolean, timeoutMs: number,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last: T | undefined;
  let failure: unknown;
  for (;;) {
    try {
      last = await read();
      if (check(last)) return last;
    } catch (error) {
      failure = error;
    }
    if (performance.now() > deadline) {
      assert.fail(`${what} within ${timeoutMs} ms; last seen: ${JSON.stringify(last)?.slice(0, 2000)} ${String(failure ?? '')}`);
    }
    await sleep(250);
  }
}

describe('the status page and status --watch on a real cluster', { timeout: 180_000 }, () => {
  const track: Spawned[] = [];
  const nodes = new Map<number, Spawned>();
  let dir = '';
  let endpoints: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'status-page-'));
    // A port found free can be taken before a node listens on it (another process's outgoing
    // connection may get it as its local port): then the whole start is tried again on new ports.
    for (let attempt = 1; ; attempt++) {
      const http = await Promise.all(NODES.map(() => freePort()));
      const paxos = await Promise.all(NODES.map(() => freePort()));
      const peers = NODES.map((id) => `${id}=127.0.0.1:${paxos[id - 1]}`).join(',');
      const httpPeers = NODES.map((id) => `${id}=127.0.0.1:${http[id - 1]}`).join(',');
      endpoints = NODES.map((id) => `http://127.0.0.1:${http[id - 1]}`);
      for (const id of NODES) {
        const node = spawnCli(['kv', 'serve', '--id', String(id), '--listen', `127.0.0.1:${paxos[id - 1]}`,
          '--http', `127.0.0.1:${http[id - 1]}`, '--peers', peers, '--http-peers', httpPeers,
          '--data', join(dir, `node-${id}`), '--groups', String(GROUPS), '--master-lease', '1000', '--json']);
        track.push(node);
        nodes.set(id, node);
      }
      try {
        for (const node of nodes.values()) await node.waitFor(/^\{"event":"started".*\}$/m, 30_000);
        break;
      } catch (error) {
        const portTaken = [...nodes.values()].some((node) => /port is in use/.test(node.stderr()));
        if (!portTaken || attempt >= 3) throw error;
        await killEverything(track, dir);
        track.length = 0;
        nodes.clear();
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true });
      }
    }
    await eventually('every node answers and every group has a master',
      () => fetchClusterStatus(endpoints[0] as string, 3_000),
      (report) => report.nodes.every((node) => node.reachable) && report.groups.length === GROUPS &&
        report.groups.every((group) => group.masterNodeId !== null), 30_000);
  });

  after(async () => {
    if (dir === '') return;
    await killEverything(track, dir);
    await rm(dir, { recursive: true, force: true });
  });

  test('status --watch prints one view after another to a pipe, and exits 0 on SIGINT', async () => {
    const watch = spawnCli(['status', '--watch', '--interval-ms', '500', '--endpoints', endpoints.join(',')]);
    track.push(watch);
    // Views one after the other, until one shows a master event (the nodes sample every 2 s) and the next begins.
    await watch.waitFor(/group \d: master is node [123][\s\S]*^--- /m, 30_000);
    watch.child.kill('SIGINT');
    assert.deepEqual(await watch.exitWithin(10_000), { code: 0, signal: null }, watch.stderr());
    const out = watch.stdout();
    assert.ok(!out.includes('\u001b['), 'no ANSI codes when standard output is not a terminal');
    const views = out.split(/^--- \d{4}-\d\d-\d\dT.*$/m).slice(1);
    assert.ok(views.length >= 2, `successive views: ${out}`);
    // The last whole view (the one that was being printed at SIGINT may be cut short).
    const first = views.filter((view) => view.includes('RECENT EVENTS AND ERRORS')).at(-1) as string;
    assert.match(first, /^multipaxos cluster, as node 1 sees it at \d\d:\d\d:\d\d: 3 of 3 nodes answer$/m);
    for (const id of NODES) {
      assert.match(first, new RegExp(`^  node ${id}  member  up  http://127\\.0\\.0\\.1:\\d+  up `, 'm'));
    }
    for (let group = 0; group < GROUPS; group++) {
      assert.match(first, new RegExp(`^  g${group}  master node [123]  lease .*instance \\d+  n1 \\d+.*, n2 \\d+.*, n3 \\d+`, 'm'));
    }
    assert.match(first, /^ {2}proposals\/s {4}node 1 {2}(\S+ {2}\d+(\.\d+)?|\(no samples yet\))$/m);
    assert.match(first, /^ {2}\d\d:\d\d:\d\d {2}nodes? [123, ]+: group \d: master is node [123]/m);
  });

  test('status --watch --json prints one cluster report a line', async () => {
    const watch = spawnCli(['status', '--watch', '--json', '--interval-ms', '300', '--endpoints', endpoints.join(',')]);
    track.push(watch);
    await watch.waitFor(/^\{.*\}\n\{.*\}\n/m, 20_000);
    watch.child.kill('SIGINT');
    assert.deepEqual(await watch.exitWithin(10_000), { code: 0, signal: null }, watch.stderr());
    const lines = watch.stdout().split('\n').filter((line) => line.length > 0);
    assert.ok(lines.length >= 2);
    for (const line of lines) {
      const report = JSON.parse(line) as ClusterReport;
      assert.equal(report.servedBy, 1);
      assert.deepEqual(report.nodes.map((node) => [node.nodeId, node.reachable]), [[1, true], [2, true], [3, true]]);
    }
  });

  test('status --watch on a terminal redraws in place (ANSI clear screen), and exits 0 on SIGINT', async (t) => {
    if (!existsSync('/usr/bin/script')) {
      t.skip('no /usr/bin/script (util-linux) to give the command a terminal');
      return;
    }
    // script(1) runs the command on a pseudo-terminal; timeout(1) sends it SIGINT after 2.5 s and
    // exits with the command's own status.
    const command = `timeout --preserve-status -s INT 2.5 ${process.execPath} ${CLI} status --watch --interval-ms 300 ` +
      `--endpoints ${endpoints.join(',')}`;
    const run = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    run.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
    const code = await new Promise<number | null>((done) => run.once('exit', done));
    assert.equal(code, 0, out);
    const clears = out.split('\u001b[H\u001b[2J').length - 1;
    assert.ok(clears >= 2, `the screen is cleared before each view (${clears} times): ${out.slice(0, 500)}`);
    assert.ok(!/^--- /m.test(out), 'no snapshot separators on a terminal');
    assert.match(out, /3 of 3 nodes answer/);
  });

  test('the page in a real browser: the cluster, a write showing up, a killed node shown down', async (t) => {
    if (!existsSync(CHROMIUM)) {
      t.skip(`no browser: ${CHROMIUM} is missing (apt-get install chromium) — the status page is not tested in a browser`);
      return;
    }
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      // launch() gives the browser a fresh temporary profile of its own, removed on close.
    });
    const client = new KvClient({ endpoints, timeoutMs: 10_000 });
    t.after(async () => {
      client.close();
      await browser.close();
    });
    await mkdir(OUTPUT_DIR, { recursive: true });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const pageErrors: string[] = [];
    page.on('pageerror', (error) => pageErrors.push(error.message));
    page.on('console', (message) => { if (message.type() === 'error') pageErrors.push(message.text()); });

    await page.goto(`${endpoints[0] as string}/ui`);
    await page.waitForSelector('#nodes tbody tr[data-health="up"]:nth-child(3)', { timeout: 15_000 });
    const nodeRows = async (): Promise<{ id: string; health: string; keys: string; text: string }[]> =>
      await page.$$eval('#nodes tbody tr', (rows) => rows.map((row) => ({
        id: row.getAttribute('data-node-id') ?? '', health: row.getAttribute('data-health') ?? '',
        keys: row.getAttribute('data-keys') ?? '', text: Array.from(row.children, (cell: { textContent: string | null }) => cell.textContent ?? '').join(' | '),
      })));
    const groupRows = async (): Promise<{ master: string; instance: number; text: string }[]> =>
      await page.$$eval('#groups tbody tr', (rows) => rows.map((row) => ({
        master: row.getAttribute('data-master') ?? '', instance: Number(row.getAttribute('data-instance')),
        text: Array.from(row.children, (cell: { textContent: string | null }) => cell.textContent ?? '').join(' | '),
      })));
    assert.deepEqual((await nodeRows()).map(({ id, health }) => [id, health]), [['1', 'up'], ['2', 'up'], ['3', 'up']]);
    assert.match((await nodeRows())[0]?.text ?? '', /^node 1 serving this page \| member \| up \| http:\/\/127\.0\.0\.1:\d+ \|/);
    const before = await groupRows();
    assert.equal(before.length, GROUPS);
    const truth = await fetchClusterStatus(endpoints[0] as string, 3_000);
    for (const [index, row] of before.entries()) {
      assert.match(row.master, /^[123]$/, `group ${index} shows a master: ${row.text}`);
      assert.match(row.text, /n1: \d+.*n2: \d+.*n3: \d+/, 'each node\'s instance');
      assert.ok(row.instance > 0 && row.instance <= (truth.groups[index]?.highestInstanceId ?? 0) + 1_000);
    }
    assert.match(await page.textContent('#served-by') ?? '', /served by node 1 · 3 of 3 nodes answer/);

    // Writes: every node's key count reaches them, the groups' instances move, the rate chart draws.
    const KEYS = 40;
    for (let index = 0; index < KEYS; index++) await client.put(`status-page-${index}`, `value ${index}`);
    await eventually('every node shows the keys written',
      nodeRows, (rows) => rows.every((row) => row.keys === String(KEYS)), 15_000);
    const afterWrites = await eventually('the groups\' instances moved', groupRows,
      (rows) => rows.every((row, index) => row.instance > (before[index]?.instance ?? Infinity)), 15_000);
    assert.equal(afterWrites.length, GROUPS);
    await eventually('the KV rate chart plots the requests',
      () => page.$eval('#chart-kv svg', (svg) => Number(svg.getAttribute('data-max'))), (max) => max > 0, 10_000);
    assert.ok(await page.$$eval('#chart-kv polyline', (lines) => lines.length) > 0, 'a line is drawn');
    assert.match(await page.textContent('#chart-kv .legend') ?? '', /node 1: .*node 2: .*node 3: /);
    const healthy = join(OUTPUT_DIR, 'status-page.png');
    await page.screenshot({ path: healthy, fullPage: true });
    console.log(`status page screenshot: ${healthy}`);

    // Node 3 dies: the page says it is down, lists it as an error, and every group ends with a master it can see.
    const victim = nodes.get(3) as Spawned;
    victim.child.kill('SIGKILL');
    await victim.exited;
    const down = await eventually('node 3 shown down', nodeRows, (rows) => rows[2]?.health === 'down', 15_000);
    assert.match(down[2]?.text ?? '', /^node 3 \| member \| down: (connection refused|no answer within \d+ ms) \|/);
    assert.deepEqual(down.slice(0, 2).map((row) => row.health), ['up', 'up']);
    await eventually('the events list node 3 as not answering',
      async () => await page.textContent('#events') ?? '', (text) => text.includes('node 3 does not answer'), 10_000);
    await eventually('every group has a master among the live nodes (after the lease of node 3 ran out)', groupRows,
      (rows) => rows.every((row) => row.master === '1' || row.master === '2'), 30_000);
    assert.match(await page.textContent('#served-by') ?? '', /2 of 3 nodes answer/);
    const killed = join(OUTPUT_DIR, 'status-page-node-down.png');
    await page.screenshot({ path: killed, fullPage: true });
    console.log(`status page screenshot after node 3 was killed: ${killed}`);
    assert.deepEqual(pageErrors, [], 'the page ran without errors');
    const report: ClusterReport = await fetchClusterStatus(endpoints[0] as string, 3_000);
    assert.equal(report.nodes.find((node) => node.nodeId === 3)?.reachable, false, 'the page agrees with the endpoint');
  });
});
