/**
 * The KV server's metrics in the Prometheus text format (version 0.0.4): requests by operation
 * and outcome, their latency as histograms, and the node underneath (instances, executions,
 * fsyncs, catch-up traffic, queue depths, proposal errors by code, transport counters).
 */
import type { NodeMetrics } from '../node/paxos-node.js';

export type KvOperation = 'put' | 'get' | 'delete' | 'session' | 'list';

/** Upper bounds of the latency buckets, in seconds: from a fast local read to a slow election. */
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

class Histogram {
  readonly counts = new Array<number>(BUCKETS.length).fill(0);
  count = 0;
  sum = 0;

  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    const index = BUCKETS.findIndex((bound) => seconds <= bound);
    if (index >= 0) this.counts[index] = (this.counts[index] as number) + 1;
  }
}

export class KvRequestMetrics {
  private readonly outcomes = new Map<string, number>();
  private readonly latencies = new Map<KvOperation, Histogram>();
  forwarded = 0;
  /** Of those, forwarded over the nodes' own transport connection rather than HTTP. */
  forwardedOverTransport = 0;
  /** Attempts of plain requests made again because their group had no master they could reach. */
  retriedForMaster = 0;
  /** Requests refused by the API's token check: no valid token (401), too small a role (403). */
  unauthenticated = 0;
  forbidden = 0;
  /** Session writes answered from the session's stored reply (a retry of a write applied before). */
  duplicates = 0;

  /** Count one request: `outcome` is OK or the error code it ended with. */
  record(operation: KvOperation, outcome: string, seconds: number): void {
    const key = `${operation}\u0000${outcome}`;
    this.outcomes.set(key, (this.outcomes.get(key) ?? 0) + 1);
    let histogram = this.latencies.get(operation);
    if (histogram === undefined) this.latencies.set(operation, histogram = new Histogram());
    histogram.observe(seconds);
  }

  /** The cumulative figures the status history samples: per operation, and the error outcomes by code. */
  totals(): { requests: Record<string, { count: number; seconds: number }>; errors: Record<string, number> } {
    const requests: Record<string, { count: number; seconds: number }> = {};
    for (const [op, histogram] of this.latencies) requests[op] = { count: histogram.count, seconds: histogram.sum };
    const errors: Record<string, number> = {};
    for (const [key, value] of this.outcomes) {
      const outcome = key.split('\u0000')[1] as string;
      if (outcome !== 'OK') errors[outcome] = (errors[outcome] ?? 0) + value;
    }
    return { requests, errors };
  }

  render(out: PrometheusWriter): void {
    out.family('multipaxos_kv_requests_total', 'counter', 'KV requests served here, by operation and outcome.');
    for (const [key, value] of this.outcomes) {
      const [op, outcome] = key.split('\u0000') as [string, string];
      out.sample('multipaxos_kv_requests_total', { op, outcome }, value);
    }
    out.family('multipaxos_kv_request_duration_seconds', 'histogram', 'Time to answer a KV request, by operation.');
    for (const [op, histogram] of this.latencies) {
      let cumulative = 0;
      BUCKETS.forEach((bound, index) => {
        cumulative += histogram.counts[index] as number;
        out.sample('multipaxos_kv_request_duration_seconds_bucket', { op, le: String(bound) }, cumulative);
      });
      out.sample('multipaxos_kv_request_duration_seconds_bucket', { op, le: '+Inf' }, histogram.count);
      out.sample('multipaxos_kv_request_duration_seconds_sum', { op }, histogram.sum);
      out.sample('multipaxos_kv_request_duration_seconds_count', { op }, histogram.count);
    }
    out.family('multipaxos_kv_forwarded_total', 'counter', 'Forwards of KV requests to the master of their group (a request tried again forwards again).');
    out.sample('multipaxos_kv_forwarded_total', {}, this.forwarded);
    out.family('multipaxos_kv_forwarded_over_transport_total', 'counter',
      'KV requests forwarded to the master over the nodes\' own connection instead of HTTP.');
    out.sample('multipaxos_kv_forwarded_over_transport_total', {}, this.forwardedOverTransport);
    out.family('multipaxos_kv_master_wait_retries_total', 'counter',
      'Attempts of KV requests made again, within their deadline, because their group had no master they could reach.');
    out.sample('multipaxos_kv_master_wait_retries_total', {}, this.retriedForMaster);
    out.family('multipaxos_http_auth_refused_total', 'counter',
      'HTTP requests refused by the token check: unauthenticated (401) or forbidden (403).');
    out.sample('multipaxos_http_auth_refused_total', { reason: 'unauthenticated' }, this.unauthenticated);
    out.sample('multipaxos_http_auth_refused_total', { reason: 'forbidden' }, this.forbidden);
    out.family('multipaxos_kv_session_duplicates_total', 'counter',
      'Session writes answered with the stored reply of their first application (retries, not applied again).');
    out.sample('multipaxos_kv_session_duplicates_total', {}, this.duplicates);
  }
}

/** Builds the exposition text: each family's HELP and TYPE once, then its samples. */
export class PrometheusWriter {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  sample(name: string, labels: Readonly<Record<string, string>>, value: number): void {
    const pairs = Object.entries(labels).map(([label, text]) => `${label}="${escapeLabel(text)}"`);
    this.lines.push(`${name}${pairs.length === 0 ? '' : `{${pairs.join(',')}}`} ${formatNumber(value)}`);
  }

  text(): string {
    return `${this.lines.join('\n')}\n`;
  }
}

/** The transport's figures that are levels, not counts (TcpTransport.stats). */
const TRANSPORT_GAUGES: ReadonlySet<string> = new Set(['receiveBufferBytes', 'openConnections', 'pendingHandshakes']);

/** The node's own metrics, per group where they are per group. */
export function renderNodeMetrics(out: PrometheusWriter, metrics: NodeMetrics): void {
  out.family('multipaxos_proposals_total', 'counter', 'Proposals made on this node that were chosen and executed.');
  out.sample('multipaxos_proposals_total', {}, metrics.proposalsSucceeded);
  out.family('multipaxos_proposal_errors_total', 'counter', 'Proposals made on this node that failed, by error code.');
  for (const [code, count] of Object.entries(metrics.proposalsFailed)) {
    out.sample('multipaxos_proposal_errors_total', { code }, count ?? 0);
  }
  const perGroup: readonly [string, 'counter' | 'gauge', string, (group: NodeMetrics['groups'][number]) => number][] = [
    ['multipaxos_instance_id', 'gauge', 'The instance this node is deciding (all below are chosen here).',
      (group) => group.nowInstanceId],
    ['multipaxos_instances_executed_total', 'counter', 'Instances executed here, catch-up included.',
      (group) => group.instancesExecuted],
    ['multipaxos_min_chosen_instance', 'gauge', 'The lowest instance still in this node\'s log (log cleaning raises it).',
      (group) => group.minChosenInstanceId],
    ['multipaxos_log_instances_cleaned_total', 'counter', 'Instances deleted from the log by log cleaning since start.',
      (group) => group.instancesCleaned],
    ['multipaxos_checkpoints_sent_total', 'counter', 'Checkpoints sent whole to a node too far behind to learn from the log.',
      (group) => group.checkpointsSent],
    ['multipaxos_checkpoints_installed_total', 'counter', 'Checkpoints received from a peer and installed here.',
      (group) => group.checkpointsInstalled],
    ['multipaxos_checkpoint_install_failures_total', 'counter', 'Received checkpoints whose install failed (the old state stood).',
      (group) => group.checkpointsFailed],
    ['multipaxos_checkpoint_transfers_abandoned_total', 'counter', 'Checkpoint transfers given up by either side.',
      (group) => group.checkpointTransfersAbandoned],
    ['multipaxos_checkpoint_bytes_sent_total', 'counter', 'Snapshot bytes sent in checkpoint transfers.',
      (group) => group.checkpointBytesSent],
    ['multipaxos_checkpoint_bytes_received_total', 'counter', 'Snapshot bytes received in checkpoint transfers.',
      (group) => group.checkpointBytesReceived],
    ['multipaxos_log_writes_total', 'counter', 'Writes to the Paxos log.', (group) => group.logWrites],
    ['multipaxos_log_fsyncs_total', 'counter', 'Writes to the Paxos log that were fsynced before anything depended on them.',
      (group) => group.syncedLogWrites],
    ['multipaxos_catchup_values_received_total', 'counter', 'Chosen values received from a teacher while catching up.',
      (group) => group.messagesIn.learnValue ?? 0],
    ['multipaxos_catchup_values_sent_total', 'counter', 'Chosen values sent to a node that was catching up.',
      (group) => group.messagesOut.learnValue ?? 0],
    ['multipaxos_queue_proposals', 'gauge', 'Proposals waiting in the group queue.', (group) => group.queuedProposals],
    ['multipaxos_queue_bytes', 'gauge', 'Bytes of proposals waiting in the group queue.', (group) => group.queuedBytes],
    ['multipaxos_values_proposed_total', 'counter', 'Values (a batch counts once) this node proposed.',
      (group) => group.valuesProposed],
    ['multipaxos_is_master', 'gauge', '1 while this node holds the group master lease.', (group) => group.isMaster ? 1 : 0],
    ['multipaxos_master_node_id', 'gauge', 'The master this node sees (0: none).', (group) => group.masterNodeId],
    ['multipaxos_group_halted', 'gauge', '1 when the group stopped on a broken invariant or a failed write.',
      (group) => group.halted === null ? 0 : 1],
  ];
  for (const [name, type, help, read] of perGroup) {
    out.family(name, type, help);
    for (const group of metrics.groups) out.sample(name, { group: String(group.groupIndex) }, read(group));
  }
  out.family('multipaxos_storage_unavailable', 'gauge', '1 while the group is halted because this node cannot ' +
    'write to its storage. It resumes by itself. reason is the error code of the last storage failure (ENOSPC, ' +
    'EIO, EROFS...; empty before any), kept after it resumed so that the series stays the same.');
  for (const group of metrics.groups) {
    const down = group.halted === 'STORAGE_UNAVAILABLE';
    out.sample('multipaxos_storage_unavailable', {
      group: String(group.groupIndex), reason: metrics.lastStorageFailure ?? '',
    }, down ? 1 : 0);
  }
  out.family('multipaxos_storage_resumes_total', 'counter', 'Times this node took writes again by itself after ' +
    'its storage failed.');
  out.sample('multipaxos_storage_resumes_total', {}, metrics.storageResumes);
  if (metrics.logDiskBytes !== undefined) {
    // One figure for the node: every group's records share the same segment files.
    out.family('multipaxos_log_disk_bytes', 'gauge', 'Bytes of log segment files on disk, pre-allocated space included.');
    out.sample('multipaxos_log_disk_bytes', {}, metrics.logDiskBytes);
  }
  if (metrics.logFlushes !== undefined) {
    // Against the groups' multipaxos_log_writes_total: how many group writes each file write carried.
    out.family('multipaxos_log_flushes_total', 'counter', 'Writes made to the log files, every group\'s records ' +
      'together (group commit may put several groups\' writes in one).');
    out.sample('multipaxos_log_flushes_total', {}, metrics.logFlushes);
  }
  for (const direction of ['received', 'sent'] as const) {
    const name = `multipaxos_messages_${direction}_total`;
    out.family(name, 'counter', `Paxos messages ${direction}, by group and kind.`);
    for (const group of metrics.groups) {
      const counts = direction === 'received' ? group.messagesIn : group.messagesOut;
      for (const [kind, count] of Object.entries(counts)) {
        out.sample(name, { group: String(group.groupIndex), kind }, count ?? 0);
      }
    }
  }
  for (const [field, value] of Object.entries(metrics.transport ?? {})) {
    if (typeof value !== 'number') continue;
    const name = `multipaxos_transport_${snakeCase(field)}`;
    // Most are counters; these go down as well as up.
    const gauge = TRANSPORT_GAUGES.has(field);
    out.family(name, gauge ? 'gauge' : 'counter', `TCP transport ${gauge ? 'gauge' : 'counter'} ${field}.`);
    out.sample(name, {}, value);
  }
}

export function renderProcessMetrics(out: PrometheusWriter): void {
  const memory = process.memoryUsage();
  out.family('process_resident_memory_bytes', 'gauge', 'Resident set size.');
  out.sample('process_resident_memory_bytes', {}, memory.rss);
  out.family('nodejs_heap_used_bytes', 'gauge', 'V8 heap in use.');
  out.sample('nodejs_heap_used_bytes', {}, memory.heapUsed);
  out.family('process_uptime_seconds', 'gauge', 'Seconds since the process started.');
  out.sample('process_uptime_seconds', {}, process.uptime());
}

function snakeCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`).replace(/[^a-z0-9_]/g, '_');
}

function escapeLabel(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}
