// The status routes of a real 3-node KV cluster (in one process, TCP between the nodes, HTTP on
// loopback): the page at / and /ui with its headers, /v1/node-status with the last minutes filling in
// as requests are answered, and /v1/cluster-status knowing the masters from their fences and the
// other nodes once told.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ClusterReport } from '../../src/kv/cluster-status.js';
import type { NodeReport } from '../../src/kv/node-report.js';
import { httpCall, jsonOf, kvPath, waitFor } from './http-helpers.js';
import { keyInGroup, startKvCluster, type KvTestCluster } from './kv-fixtures.js';

const cluster: KvTestCluster = await startKvCluster({ groups: 2 });

describe('the status routes of a 3-node cluster', () => {
  after(() => cluster.stop());
  const first = cluster.endpoints[0] as string;

  test('the page is served at / and /ui as HTML that may run only its own inline script', async () => {
    for (const path of ['/', '/ui']) {
      const page = await httpCall(first, 'GET', path);
      assert.equal(page.status, 200);
      assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(String(page.headers['content-security-policy']), /default-src 'none'; script-src 'unsafe-inline';.*connect-src 'self'/);
      assert.equal(page.headers['x-content-type-options'], 'nosniff');
      assert.match(page.text, /^<!doctype html>/);
      assert.match(page.text, /fetch\("\/v1\/cluster-status"/);
      assert.doesNotMatch(page.text, /<script[^>]+src=|<link[^>]+stylesheet|https?:\/\/(?!www\.w3\.org\/2000\/svg)/,
        'nothing loaded from elsewhere');
      assert.doesNotMatch(page.text, /innerHTML|insertAdjacentHTML|document\.write/, 'data reaches the DOM as text only');
    }
    const head = await httpCall(first, 'HEAD', '/ui');
    assert.equal(head.status, 200);
    assert.equal(head.text, '');
    const post = await httpCall(first, 'POST', '/ui');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const query = await httpCall(first, 'GET', '/v1/cluster-status?nodes=all');
    assert.equal(query.status, 400);
    assert.equal(jsonOf(query).error, 'BAD_REQUEST');
  });

  test('/v1/node-status: the node, its groups\' log range, and its last minutes as requests are answered', async () => {
    const master = await cluster.serving(0);
    const endpoint = cluster.endpoints[master.nodeId - 1] as string;
    const key = keyInGroup(master, 0, 'status-routes');
    for (let index = 0; index < 5; index++) {
      const put = await httpCall(endpoint, 'PUT', kvPath(key), { body: JSON.stringify({ value: `v${index}` }) });
      assert.equal(put.status, 200, put.text);
    }
    let report: NodeReport | undefined;
    await waitFor('a sample with the writes (nodes sample every 2 s)', async () => {
      report = JSON.parse((await httpCall(endpoint, 'GET', '/v1/node-status')).text) as NodeReport;
      return report.history.some((sample) => sample.kvOpsPerSecond > 0 && (sample.writeLatencyMs ?? 0) > 0);
    }, 15_000);
    const node = report as NodeReport;
    assert.equal(node.nodeId, master.nodeId);
    assert.equal(node.endpoint, endpoint);
    assert.deepEqual(node.members.map((member) => member.id), [1, 2, 3]);
    assert.equal(node.groups.length, 2);
    const group0 = node.groups[0];
    assert.equal(group0?.isMaster, true);
    const [from, to] = [group0?.minChosenInstanceId ?? -1, group0?.nowInstanceId ?? -1];
    assert.ok(from >= 0 && from <= to, `the log kept: ${from}..${to}`);
    assert.equal(node.kv.keys >= 1, true);
    assert.ok(node.proposals.succeeded >= 5, `proposals: ${JSON.stringify(node.proposals)}`);
    assert.equal(node.events.at(-1)?.kind, 'started');
    assert.ok(node.events.some((event) => event.kind === 'master' && event.text.startsWith('group 0: master is node')));
  });

  test('/v1/cluster-status knows the masters from their fences, and every node once told where it is', async () => {
    for (let group = 0; group < cluster.groups; group++) await cluster.serving(group);
    const servedBy = cluster.servers[0];
    const read = async (): Promise<ClusterReport> =>
      JSON.parse((await httpCall(first, 'GET', '/v1/cluster-status')).text) as ClusterReport;
    let report = await read();
    assert.deepEqual(report.nodes.map((node) => node.nodeId), [1, 2, 3], 'every member is listed');
    // Every node is up: one is either reached, or not known (no endpoint), never reported down.
    for (const node of report.nodes) {
      if (node.reachable) continue;
      assert.deepEqual([node.endpoint, node.error], [null, 'HTTP endpoint not known here'], `node ${node.nodeId}`);
    }
    // The masters' endpoints come with their fences.
    await waitFor('the masters answer in the cluster status', async () => {
      report = await read();
      const masters = report.groups.map((group) => group.masterNodeId);
      return masters.every((id) => id !== null && report.nodes.find((node) => node.nodeId === id)?.reachable === true);
    }, 15_000);
    cluster.endpoints.forEach((endpoint, index) => servedBy?.knowPeer(index + 1, endpoint));
    await waitFor('every node answers', async () => (await read()).nodes.every((node) => node.reachable), 15_000);
    report = await read();
    assert.equal(report.servedBy, 1);
    assert.equal(report.groups.length, 2);
    for (const group of report.groups) {
      assert.deepEqual(group.nodes.map((node) => node.nodeId), [1, 2, 3]);
      for (const node of group.nodes) {
        assert.ok(node.behind >= 0 && node.nowInstanceId + node.behind === group.highestInstanceId);
      }
    }
  });
});
