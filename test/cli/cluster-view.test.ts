// The terminal view of `multipaxos status --watch`, from a cluster report: a node that is down with
// its reason, a node that trails, the last minute as sparklines, and one event line for a change
// several nodes saw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { renderClusterView, sparkline } from '../../src/cli/cluster-view.js';
import type { ClusterReport } from '../../src/kv/cluster-status.js';
import type { NodeReport } from '../../src/kv/node-report.js';

const AT = Date.UTC(2026, 0, 1, 12, 0, 0);

function nodeReport(nodeId: number, nowInstanceId: number): NodeReport {
  return {
    nodeId, endpoint: `http://127.0.0.1:800${nodeId}`, follower: false, uptimeSeconds: 65, at: AT,
    members: [1, 2, 3].map((id) => ({ id, host: '127.0.0.1', port: 8100 + id })), followers: [],
    groups: [{
      group: 0, nowInstanceId, lastExecutedInstanceId: nowInstanceId - 1, checkpointInstanceId: 40,
      minChosenInstanceId: 10, master: { nodeId: 1, endpoint: 'http://127.0.0.1:8001' },
      leaseExpiresInMs: nodeId === 1 ? 2_400 : 2_000, isMaster: nodeId === 1, serving: nodeId === 1,
      members: [1, 2, 3], membersVersion: 0, instancesCleaned: 10, queuedProposals: 0, halted: null, sessions: 0,
      storage: null,
    }],
    kv: { keys: 7, tombstones: 0, valueBytes: 70 }, logDiskBytes: 16 * 2 ** 20,
    proposals: { succeeded: 5, failed: {} },
    history: [0, 5, 10].map((rate, index) => ({
      at: AT - (3 - index) * 2_000, proposalsPerSecond: rate, instancesPerSecond: rate, kvOpsPerSecond: rate,
      kvErrorsPerSecond: 0, writeLatencyMs: rate === 0 ? null : 3.5, readLatencyMs: null,
    })),
    events: [{ at: AT - 10_000, kind: 'master', text: 'group 0: master is node 1' }],
    knownEndpoints: {},
  };
}

test('the terminal view: nodes up and down, masters and trailing nodes, sparklines, merged events', () => {
  const report: ClusterReport = {
    servedBy: 1, at: AT,
    nodes: [
      { nodeId: 1, role: 'member', endpoint: 'http://127.0.0.1:8001', reachable: true, error: null, report: nodeReport(1, 50) },
      { nodeId: 2, role: 'member', endpoint: 'http://127.0.0.1:8002', reachable: true, error: null, report: nodeReport(2, 47) },
      { nodeId: 3, role: 'member', endpoint: 'http://127.0.0.1:8003', reachable: false, error: 'connection refused', report: null },
    ],
    groups: [{
      group: 0, masterNodeId: 1, leaseExpiresInMs: 2_400, highestInstanceId: 50,
      nodes: [{ nodeId: 1, nowInstanceId: 50, behind: 0 }, { nodeId: 2, nowInstanceId: 47, behind: 3 }],
    }],
  };
  const view = renderClusterView(report);
  assert.match(view, /^multipaxos cluster, as node 1 sees it at \d\d:\d\d:\d\d: 2 of 3 nodes answer$/m);
  const up = new RegExp('^ {2}node 1 {2}member {2}up {4}http://127\\.0\\.0\\.1:8001 {2}up 1m 05s {2}keys 7 ' +
    '{2}log 16\\.0 MiB {2}master of g0$', 'm');
  assert.match(view, up);
  assert.match(view, /^ {2}node 3 {2}member {2}DOWN {2}http:\/\/127\.0\.0\.1:8003 {2}connection refused$/m);
  assert.match(view, /^ {2}g0 {2}master node 1 {2}lease 2\.4 s {2}instance 50 {2}n1 50, n2 47 \(-3\)$/m);
  assert.match(view, /^ {2}node 1 {2}g0 10\.\.50 cleaned 10 snap 40$/m);
  assert.match(view, /^ {2}proposals\/s {4}node 1 {2}▁▅█ {2}10$/m);
  assert.match(view, /^ {2}write ms {7}node 2 {2} ██ {2}3\.5$/m);
  assert.match(view, /^ {2}read ms {8}node 1 {7}-$/m, 'no read in the minute: blanks and no value');
  // Seen by nodes 1 and 2: one line naming both; node 3's silence is listed first (it is now).
  const events = view.slice(view.indexOf('RECENT EVENTS AND ERRORS')).split('\n').slice(1);
  assert.equal(events.length, 2);
  assert.match(events[0] as string, /^ {2}\d\d:\d\d:\d\d {2}node 3 does not answer: connection refused$/);
  assert.match(events[1] as string, /^ {2}\d\d:\d\d:\d\d {2}nodes 1, 2: group 0: master is node 1$/);
});

test('sparklines scale to their largest value and leave a gap where there is no value', () => {
  assert.equal(sparkline([0, 1, 2, 4, 8]), '▁▂▃▅█');
  assert.equal(sparkline([0, 0]), '▁▁');
  assert.equal(sparkline([null, 3]), ' █');
});
