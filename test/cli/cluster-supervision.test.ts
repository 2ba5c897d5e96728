// `multipaxos cluster up` keeps its nodes running: a node killed with kill -9 is restarted and the
// cluster serves again with all three; a node stopped with SIGTERM stays stopped; a node that cannot
// start (its port taken) is given up on after five tries; and SIGTERM, or SIGINT twice (Ctrl-C under
// npm start), still stops everything with status 0 and frees every port.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  clusterScope, kvServeProcess, portIsFree, processesMentioning, runCli, startClusterUp, type ClusterUp,
} from '../support/cluster-up.js';

const LEASE_FLAGS = ['--master-lease', '1000'];

interface Event {
  readonly event: string;
  readonly nodeId?: number;
  readonly [field: string]: unknown;
}

function events(cluster: ClusterUp): Event[] {
  return cluster.stdout().trim().split('\n').map((line) => JSON.parse(line) as Event);
}

/** Every node's HTTP and Paxos port is free again. */
async function assertPortsFree(basePort: number): Promise<void> {
  for (const id of [1, 2, 3]) {
    for (const port of [basePort + id, basePort + 100 + id]) assert.ok(await portIsFree(port), `port ${port} still taken`);
  }
}

/** Stopped by `signals` (sent one after the other): exit 0, a `stopped` event last, nothing left. */
async function assertStopsCleanly(cluster: ClusterUp, dir: string, signals: NodeJS.Signals[]): Promise<void> {
  for (const signal of signals) cluster.child.kill(signal);
  const exit = await cluster.exitWithin(20_000);
  assert.deepEqual(exit, { code: 0, signal: null }, `cluster up: ${cluster.stdout()}\n${cluster.stderr()}`);
  assert.equal(events(cluster).at(-1)?.event, 'stopped');
  assert.deepEqual(await processesMentioning(dir), [], 'processes left behind');
  await assertPortsFree(cluster.basePort);
}

test('kill -9 of a node: cluster up restarts it and the cluster serves with all three; SIGTERM exits 0',
  { timeout: 60_000 }, async (t) => {
    const { dir, track } = await clusterScope(t, 'cluster-restart');
    const cluster = await startClusterUp({ dir, json: true, flags: LEASE_FLAGS, track });
    const victim = await kvServeProcess(dir, 2);
    assert.ok(victim !== undefined, 'node 2 runs');
    process.kill(victim.pid, 'SIGKILL');

    await cluster.waitFor(/^\{"event":"exit","nodeId":2.*\}$/m, 5_000);
    const restart = JSON.parse((await cluster.waitFor(/^\{"event":"restart","nodeId":2.*\}$/m, 10_000))[0]) as Event;
    const exit = events(cluster).find((event) => event.event === 'exit');
    assert.deepEqual(exit, {
      event: 'exit', nodeId: 2, detail: 'exited (signal SIGKILL)', next: 'restart', restartInMs: 500, attempt: 1,
    });
    const again = await kvServeProcess(dir, 2);
    assert.ok(again !== undefined && again.pid !== victim.pid, 'a new node 2 process');
    assert.deepEqual([restart.pid, again.ppid], [again.pid, cluster.child.pid], 'started by cluster up');
    assert.deepEqual(again.argv, victim.argv, 'with the same command line: the same data and ports');

    // Serving again: node 2 answers, every node is up in `multipaxos status`, and a write through node 2 lands.
    const endpoints = ['--endpoints', cluster.endpoints.join(',')];
    let status = await runCli(['status', '--json', ...endpoints]);
    for (let tries = 0; status.code !== 0 && tries < 40; tries++) {
      await sleep(250);
      status = await runCli(['status', '--json', ...endpoints]);
    }
    assert.equal(status.code, 0, `${status.stdout}\n${status.stderr}`);
    const nodes = (JSON.parse(status.stdout) as { nodes: { up: boolean }[] }).nodes;
    assert.deepEqual(nodes.map((node) => node.up), [true, true, true]);
    const put = await runCli(['kv', 'put', 'after-restart', 'yes', '--endpoints', cluster.endpoints[1] as string]);
    assert.equal(put.code, 0, put.stderr);
    const get = await runCli(['kv', 'get', 'after-restart', '--endpoints', cluster.endpoints[1] as string]);
    assert.deepEqual([get.code, get.stdout], [0, 'yes\n'], get.stderr);

    await assertStopsCleanly(cluster, dir, ['SIGTERM']);
    assert.equal(events(cluster).filter((event) => event.event === 'restart').length, 1, 'no restart while stopping');
  });

test('a node stopped with SIGTERM stays stopped; one that cannot start is given up on; SIGINT twice exits 0',
  { timeout: 90_000 }, async (t) => {
    const { dir, track, undo } = await clusterScope(t, 'cluster-give-up');
    const cluster = await startClusterUp({ dir, json: true, flags: LEASE_FLAGS, track });

    const stopped = await kvServeProcess(dir, 1);
    assert.ok(stopped !== undefined, 'node 1 runs');
    process.kill(stopped.pid, 'SIGTERM');
    await cluster.waitFor(/^\{"event":"exit","nodeId":1,"detail":"exited \(status 0\)","next":"stopped"\}$/m, 15_000);

    // Node 3's HTTP port is taken the moment it dies, so every restart fails at start-up.
    const victim = await kvServeProcess(dir, 3);
    assert.ok(victim !== undefined, 'node 3 runs');
    process.kill(victim.pid, 'SIGKILL');
    await cluster.waitFor(/^\{"event":"exit","nodeId":3.*\}$/m, 5_000);
    // It hangs up on whoever connects (cluster up polls node 3's endpoint), so that close() does not
    // wait for those connections to end.
    const squatter: Server = createServer((socket) => socket.destroy());
    await new Promise<void>((listening) => squatter.listen(cluster.basePort + 3, '127.0.0.1', listening));
    undo.push(() => new Promise((closed) => squatter.close(closed)));

    const gaveUp = await cluster.waitFor(/^\{"event":"gave-up","nodeId":3.*\}$/m, 45_000);
    assert.deepEqual(JSON.parse(gaveUp[0]), { event: 'gave-up', nodeId: 3, startFailures: 5 });
    const nodeThree = events(cluster).filter((event) => event.nodeId === 3);
    assert.deepEqual(nodeThree.filter((event) => event.event === 'exit').map((event) => event.restartInMs),
      [500, 1_000, 2_000, 4_000, 8_000, undefined],
      'the kill, then four start-up failures backing off, and the fifth one gives up');
    assert.equal(nodeThree.filter((event) => event.event === 'restart').length, 5);
    assert.match(cluster.stderr(), /^\[node 3\] .*in use/m, "the node's own reason is passed on");

    await sleep(1_500);
    assert.equal(events(cluster).filter((event) => event.event === 'restart' && event.nodeId !== 3).length, 0,
      'node 1, stopped on purpose, was not restarted');
    assert.equal(await kvServeProcess(dir, 1), undefined);
    assert.equal(cluster.child.exitCode, null, 'cluster up keeps running with the node it has');
    await new Promise((closed) => squatter.close(closed));
    // Ctrl-C under `npm start` reaches cluster up twice: from the terminal and from npm.
    await assertStopsCleanly(cluster, dir, ['SIGINT', 'SIGINT']);
  });
