/**
 * What one node tells about itself at `GET /v1/node-status`: its `/status`, the figures behind the
 * log (its size, the cleaned range), its request and proposal counts, and its last minutes (rates,
 * latencies and events from StatusHistory). `/v1/cluster-status` gathers these from every node.
 */
import type { Member } from '../runtime/membership/membership-codec.js';
import type { KvRequestMetrics } from './kv-metrics.js';
import type { KvGroupStatus, KvService } from './kv-service.js';
import type { HistorySample, StatusEvent, StatusHistory, StatusReading } from './status-history.js';

export interface GroupReport extends KvGroupStatus {
  readonly membersVersion: number;
  /** Instances this node deleted from the group's log since it started. */
  readonly instancesCleaned: number;
  readonly queuedProposals: number;
  readonly halted: string | null;
}

export interface NodeReport {
  readonly nodeId: number;
  readonly endpoint: string;
  readonly follower: boolean;
  readonly uptimeSeconds: number;
  /** Wall-clock ms since the epoch, for display. */
  readonly at: number;
  /** Group 0's voting members (every group starts with the same ones). */
  readonly members: readonly Member[];
  readonly followers: readonly { readonly id: number; readonly follows: number }[];
  readonly groups: readonly GroupReport[];
  readonly kv: { readonly keys: number; readonly tombstones: number; readonly valueBytes: number };
  /** Bytes of log segment files on disk (null: the store cannot tell). */
  readonly logDiskBytes: number | null;
  readonly proposals: { readonly succeeded: number; readonly failed: Readonly<Record<string, number>> };
  readonly history: readonly HistorySample[];
  readonly events: readonly StatusEvent[];
  /** The HTTP endpoints of other nodes this node knows (configured or learned from fences), by node id. */
  readonly knownEndpoints: Readonly<Record<string, string>>;
}

/** The counters StatusHistory samples, read now. */
export function readCounters(service: KvService, requests: KvRequestMetrics, at: number): StatusReading {
  const metrics = service.node.metrics();
  const totals = requests.totals();
  return {
    at,
    proposalsSucceeded: metrics.proposalsSucceeded,
    proposalsFailed: countsOf(metrics.proposalsFailed),
    requests: totals.requests,
    requestErrors: totals.errors,
    groups: metrics.groups.map((group) => {
      const membership = service.node.members(group.groupIndex);
      return {
        group: group.groupIndex, nowInstanceId: group.nowInstanceId, masterNodeId: group.masterNodeId,
        membersVersion: membership.version, members: membership.members.map((member) => member.id),
        halted: group.halted,
      };
    }),
  };
}

export function nodeReport(
  service: KvService, endpoint: string, history: StatusHistory, knownEndpoints: ReadonlyMap<number, string>,
): NodeReport {
  const metrics = service.node.metrics();
  const groups = service.status().map((status): GroupReport => {
    const figures = metrics.groups.find((group) => group.groupIndex === status.group);
    return {
      ...status,
      membersVersion: service.node.members(status.group).version,
      instancesCleaned: figures?.instancesCleaned ?? 0,
      queuedProposals: figures?.queuedProposals ?? 0,
      halted: figures?.halted ?? null,
    };
  });
  const known: Record<string, string> = {};
  for (const [nodeId, url] of knownEndpoints) known[String(nodeId)] = url;
  return {
    nodeId: service.nodeId,
    endpoint,
    follower: service.node.isFollower,
    uptimeSeconds: Math.round(process.uptime()),
    at: Date.now(),
    members: service.node.members(0).members,
    followers: service.node.followers(),
    groups,
    kv: service.machine.stats(),
    logDiskBytes: metrics.logDiskBytes ?? null,
    proposals: { succeeded: metrics.proposalsSucceeded, failed: countsOf(metrics.proposalsFailed) },
    history: history.recentSamples(),
    events: history.recentEvents(),
    knownEndpoints: known,
  };
}

function countsOf(counts: Readonly<Partial<Record<string, number>>>): Record<string, number> {
  const plain: Record<string, number> = {};
  for (const [code, count] of Object.entries(counts)) if (count !== undefined) plain[code] = count;
  return plain;
}
