// The status page's last minutes on one node: rates and mean latencies per interval from cumulative
// counters, events for master and membership changes and for errors, and memory that stays bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StatusHistory, type GroupReading, type StatusReading } from '../../src/kv/status-history.js';

const T0 = 1_700_000_000_000;
const LATER_REQUESTS = {
  put: { count: 20, seconds: 1.05 }, delete: { count: 10, seconds: 0.05 }, get: { count: 8, seconds: 0.012 },
};

function group(overrides: Partial<GroupReading> = {}): GroupReading {
  return {
    group: 0, nowInstanceId: 0, masterNodeId: 1, membersVersion: 0, members: [1, 2, 3], halted: null, ...overrides,
  };
}

function reading(at: number, overrides: Partial<StatusReading> = {}): StatusReading {
  return {
    at, proposalsSucceeded: 0, proposalsFailed: {}, requests: {}, requestErrors: {}, groups: [group()], ...overrides,
  };
}

test('a sample holds the rates and mean latencies of the interval since the previous reading', () => {
  const history = new StatusHistory(T0);
  history.record(reading(T0, {
    proposalsSucceeded: 10, requests: { put: { count: 10, seconds: 1 }, get: { count: 4, seconds: 0.004 } },
    groups: [group({ nowInstanceId: 100 })],
  }));
  assert.deepEqual(history.recentSamples(), [], 'the first reading is only a base');
  history.record(reading(T0 + 2_000, {
    proposalsSucceeded: 30,
    requests: LATER_REQUESTS,
    requestErrors: { TIMEOUT: 2, KEY_NOT_FOUND: 6 },
    groups: [group({ nowInstanceId: 140 })],
  }));
  const [sample] = history.recentSamples();
  assert.deepEqual(sample, {
    at: T0 + 2_000,
    proposalsPerSecond: 10,
    instancesPerSecond: 20,
    // 20 writes and 4 reads in 2 s.
    kvOpsPerSecond: 12,
    // KEY_NOT_FOUND answers the caller's question; only TIMEOUT counts as an error.
    kvErrorsPerSecond: 1,
    // 0.1 s over 20 writes, 0.008 s over 4 reads.
    writeLatencyMs: 5,
    readLatencyMs: 2,
  });
  history.record(reading(T0 + 4_000, {
    proposalsSucceeded: 30,
    requests: LATER_REQUESTS,
    requestErrors: { TIMEOUT: 2, KEY_NOT_FOUND: 6 },
    groups: [group({ nowInstanceId: 140 })],
  }));
  const quiet = history.recentSamples()[1];
  assert.equal(quiet?.kvOpsPerSecond, 0);
  assert.equal(quiet?.writeLatencyMs, null, 'no request, no latency (not a zero)');
  assert.equal(quiet?.readLatencyMs, null);
});

test('master changes, membership changes, halts and errors become events, newest first', () => {
  // (NOT_MASTER and VERSION_CONFLICT are answers to clients, not errors of the cluster.)
  const history = new StatusHistory(T0);
  history.record(reading(T0, { groups: [group({ masterNodeId: 0, membersVersion: -1 })] }));
  history.record(reading(T0 + 2_000, { groups: [group({ masterNodeId: 1, membersVersion: 0 })] }));
  history.record(reading(T0 + 4_000, { groups: [group({ masterNodeId: 0 })] }));
  history.record(reading(T0 + 6_000, {
    groups: [group({ masterNodeId: 2, membersVersion: 40, members: [2, 3, 4], halted: 'STORAGE' })],
    proposalsFailed: { TIMEOUT: 3 }, requestErrors: { UNAVAILABLE: 1, NOT_MASTER: 4, VERSION_CONFLICT: 5 },
  }));
  assert.deepEqual(history.recentEvents().map(({ kind, text }) => `${kind}: ${text}`), [
    'error: 1 KV request(s) failed with UNAVAILABLE',
    'error: 3 proposal(s) failed with TIMEOUT',
    'halted: group 0 halted: STORAGE',
    'membership: group 0: members are now 2, 3, 4 (version 40)',
    'master: group 0: master is node 2',
    'master: group 0: no master (node 1 lost it)',
    'membership: group 0: created with members 1, 2, 3',
    'master: group 0: master is node 1',
    'started: node started',
  ]);
  assert.ok(history.recentEvents().every((event, index, all) => index === 0 || (all[index - 1]?.at ?? 0) >= event.at));
});

test('memory stays bounded: at most 150 samples (five minutes) and 100 events', () => {
  const history = new StatusHistory(T0);
  for (let index = 0; index < 1_000; index++) {
    const groups = [group({ masterNodeId: 1 + (index % 2), nowInstanceId: index })];
    history.record(reading(T0 + index * 2_000, { groups }));
  }
  const samples = history.recentSamples();
  assert.equal(samples.length, 150);
  assert.equal(samples.at(-1)?.at, T0 + 999 * 2_000, 'the newest is kept');
  assert.equal(samples[0]?.at, T0 + 850 * 2_000, 'the oldest go first');
  const events = history.recentEvents();
  assert.equal(events.length, 100);
  assert.equal(events[0]?.text, 'group 0: master is node 2 (was node 1)');
});
