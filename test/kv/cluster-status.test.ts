// /v1/cluster-status gathered on one node, over real HTTP: peers that answer are in the report,
// one that is down, one that answers garbage and one that answers as another node are reported as
// unreachable with the reason; a node whose endpoint nobody knows is listed as such; endpoints are
// learned from fences, never from what a peer's report names; the groups' summary names the master most nodes see
// and how far each node trails. The peers here are plain HTTP servers serving fixed reports (this
// isolates the gathering; the real-process test in test/process/status-page.test.ts runs it whole).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { ClusterStatus } from '../../src/kv/cluster-status.js';
import type { GroupReport, NodeReport } from '../../src/kv/node-report.js';
import { freePort } from '../support/local.js';

function groupReport(
  group: number, nowInstanceId: number, masterNodeId: number | undefined, isMaster: boolean,
): GroupReport {
  return {
    group, nowInstanceId, lastExecutedInstanceId: nowInstanceId - 1, checkpointInstanceId: -1, minChosenInstanceId: 0,
    master: masterNodeId === undefined ? undefined : { nodeId: masterNodeId, endpoint: undefined },
    leaseExpiresInMs: isMaster ? 900 : null, isMaster, serving: isMaster, members: [1, 2, 3, 4], membersVersion: 0,
    instancesCleaned: 0, queuedProposals: 0, halted: null, sessions: 0, storage: null,
  };
}

function report(
  nodeId: number, endpoint: string, groups: GroupReport[], knownEndpoints: Record<string, string> = {},
): NodeReport {
  return {
    nodeId, endpoint, follower: false, uptimeSeconds: 5, at: 1_700_000_000_000,
    members: [1, 2, 3, 4].map((id) => ({ id, host: '127.0.0.1', port: 1000 + id })),
    followers: [{ id: 6, follows: 1 }], groups, kv: { keys: 0, tombstones: 0, valueBytes: 0 }, logDiskBytes: 0,
    proposals: { succeeded: 0, failed: {} }, history: [], events: [], knownEndpoints,
  };
}

async function serve(answer: (port: number) => string): Promise<{ server: Server; url: string; hits: () => number }> {
  let hits = 0;
  const server = createServer((request, response) => {
    hits++;
    assert.equal(request.url, '/v1/node-status');
    const port = (server.address() as AddressInfo).port;
    response.writeHead(200, { 'content-type': 'application/json' }).end(answer(port));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits: () => hits };
}

test('the cluster as one node gathers it: answers, failures with their reason, the groups summarized', async (t) => {
  const deadPort = await freePort();
  const peer2 = await serve((port) => JSON.stringify(report(2, `http://127.0.0.1:${port}`,
    [groupReport(0, 50, 2, true), groupReport(1, 40, 1, false)], { 5: 'http://127.0.0.1:9' })));
  const garbage = await serve(() => '<html>not json</html>');
  const impostor = await serve((port) => JSON.stringify(report(8, `http://127.0.0.1:${port}`, [])));
  t.after(() => {
    for (const { server } of [peer2, garbage, impostor]) server.close();
  });
  const self = (): NodeReport => report(1, 'http://127.0.0.1:1', [
    // Node 1 sees node 3 as master of group 0 and learns its endpoint from that fence.
    { ...groupReport(0, 47, 3, false), master: { nodeId: 3, endpoint: garbage.url } },
    groupReport(1, 40, 1, true),
  ]);
  const cluster = new ClusterStatus(self, new Map([[2, peer2.url], [4, `http://127.0.0.1:${deadPort}`], [7, impostor.url]]), { timeoutMs: 800 });
  t.after(() => cluster.close());

  const gathered = await cluster.gather();
  assert.equal(gathered.servedBy, 1);
  const byId = new Map(gathered.nodes.map((node) => [node.nodeId, node]));
  assert.deepEqual([...byId.keys()], [1, 2, 3, 4, 6, 7], 'members, followers and every node with a known endpoint');
  assert.equal(byId.get(1)?.reachable, true);
  assert.equal(byId.get(2)?.reachable, true);
  assert.equal(byId.get(2)?.report?.nodeId, 2);
  assert.deepEqual(byId.get(3), {
    nodeId: 3, role: 'member', endpoint: garbage.url, reachable: false, error: 'its answer is not JSON', report: null,
  });
  assert.equal(byId.get(4)?.reachable, false);
  assert.equal(byId.get(4)?.error, 'connection refused');
  assert.deepEqual(byId.get(6), {
    nodeId: 6, role: 'follower', endpoint: null, reachable: false, error: 'HTTP endpoint not known here', report: null,
  });
  assert.equal(byId.get(7)?.role, 'unknown');
  assert.equal(byId.get(7)?.error, 'the endpoint answers as node 8, not 7');

  // Group 0: nodes 1 and 2 answered; node 1 names 3, node 2 names itself: a tie goes to the lower id,
  // and the lease is the master's own view only when that master answered.
  assert.deepEqual(gathered.groups[0], {
    group: 0, masterNodeId: 2, leaseExpiresInMs: 900, highestInstanceId: 50,
    nodes: [{ nodeId: 1, nowInstanceId: 47, behind: 3 }, { nodeId: 2, nowInstanceId: 50, behind: 0 }],
  });
  assert.deepEqual(gathered.groups[1], {
    group: 1, masterNodeId: 1, leaseExpiresInMs: 900, highestInstanceId: 40,
    nodes: [{ nodeId: 1, nowInstanceId: 40, behind: 0 }, { nodeId: 2, nowInstanceId: 40, behind: 0 }],
  });
  // Node 2 reported an endpoint for node 5: never fetched on its word alone (one answer must not
  // steer this node's requests to any address), so node 5 stays unknown.
  assert.equal(cluster.knownEndpoints().get(5), undefined);
  assert.ok(!(await cluster.gather()).nodes.some((node) => node.nodeId === 5));

  // Viewers polling together share one gathering (one under way, or one that ended under 500 ms ago).
  await sleep(600);
  const asked = peer2.hits();
  await Promise.all([cluster.gather(), cluster.gather()]);
  assert.equal(peer2.hits(), asked + 1);
});

test('a peer that does not answer in time is reported, and does not hold the report up', async (t) => {
  const silent = createServer(() => { /* never answers */ });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    silent.closeAllConnections();
    silent.close();
  });
  const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
  const cluster = new ClusterStatus(() => report(1, 'http://127.0.0.1:1', [groupReport(0, 3, 1, true)]), new Map([[2, url]]), { timeoutMs: 300 });
  t.after(() => cluster.close());
  const started = performance.now();
  const gathered = await cluster.gather();
  assert.ok(performance.now() - started < 5_000, 'bounded by the peer deadline');
  assert.equal(gathered.nodes.find((node) => node.nodeId === 2)?.error, 'no answer within 300 ms');
  assert.equal(gathered.groups[0]?.masterNodeId, 1);
});
