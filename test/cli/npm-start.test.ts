// `npm start` as the README promises: Ctrl-C (SIGINT to the terminal's whole process group) and a
// SIGTERM to npm alone both stop the cluster and end npm with status 0, leaving no node behind.
// npm runs the script through `sh -c`; without the script's `exec`, sh died of the signal first and
// npm reported it (130), or left cluster up running orphaned (SIGTERM to npm alone).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { clusterScope, freeBasePort, portIsFree, processesMentioning } from '../support/cluster-up.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

async function npmStartThenSignal(t: TestContext, signal: NodeJS.Signals, target: 'group' | 'npm'): Promise<void> {
  const { dir, undo } = await clusterScope(t, `npm-start-${signal.toLowerCase()}`);
  const basePort = await freeBasePort(3);
  // detached: npm leads its own process group, as a terminal's foreground job does.
  const npm = spawn('npm', ['start', '--', '--dir', dir, '--base-port', String(basePort), '--master-lease', '1000'],
    { cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  npm.stdout.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  npm.stderr.on('data', (chunk: Buffer) => { output += chunk.toString('utf8'); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | 'no npm'>((resolve) => {
    npm.once('error', () => resolve('no npm'));
    npm.once('exit', (code, exitSignal) => resolve({ code, signal: exitSignal }));
  });
  undo.push(() => {
    // The group is npm, its sh (if any), cluster up and the nodes: whatever is left goes.
    try {
      process.kill(-(npm.pid as number), 'SIGKILL');
    } catch {
      // Gone already.
    }
  });
  const deadline = Date.now() + 30_000;
  while (!/^ready /m.test(output)) {
    const early = await Promise.race([exited, sleep(100, undefined)]);
    if (early === 'no npm') return t.skip('npm is not on the PATH');
    assert.ok(early === undefined, `npm start exited before ready: ${JSON.stringify(early)}\n${output}`);
    assert.ok(Date.now() < deadline, `npm start not ready within 30 s:\n${output}`);
  }

  if (target === 'group') process.kill(-(npm.pid as number), signal);
  else npm.kill(signal);
  const exit = await Promise.race([exited, sleep(25_000, 'still running' as const)]);
  assert.deepEqual(exit, { code: 0, signal: null }, output);
  assert.match(output, /^stopped$/m);
  const left = Date.now() + 5_000;
  while ((await processesMentioning(dir)).length > 0 && Date.now() < left) await sleep(100);
  assert.deepEqual(await processesMentioning(dir), [], 'processes left behind');
  for (const id of [1, 2, 3]) {
    for (const port of [basePort + id, basePort + 100 + id]) assert.ok(await portIsFree(port), `port ${port} taken`);
  }
}

test('npm start, Ctrl-C (SIGINT to the process group): npm exits 0 and no node is left', { timeout: 60_000 },
  async (t) => await npmStartThenSignal(t, 'SIGINT', 'group'));

test('npm start, SIGTERM to npm alone: the cluster stops, npm exits 0 and no node is left', { timeout: 60_000 },
  async (t) => await npmStartThenSignal(t, 'SIGTERM', 'npm'));
