/**
 * The status page's view as terminal text, for `multipaxos status --watch`: nodes and their health,
 * each group's master, lease and instances (with how far each node trails), the log kept and
 * cleaned, the last minutes as sparklines, and recent events. Built from `/v1/cluster-status`.
 */
import type { ClusterReport, NodeEntry } from '../kv/cluster-status.js';
import type { HistorySample } from '../kv/status-history.js';
import { formatDuration } from './format-duration.js';

const SPARKS = '▁▂▃▄▅▆▇█';
/** The last minute of 2-second samples. */
const SPARK_SAMPLES = 30;
const EVENTS_SHOWN = 10;
const EVENT_MERGE_MS = 5_000;

export function renderClusterView(report: ClusterReport): string {
  const answering = report.nodes.filter((node) => node.reachable).length;
  const lines = [
    `multipaxos cluster, as node ${report.servedBy} sees it at ${clock(report.at)}: ` +
      `${answering} of ${report.nodes.length} nodes answer`,
    '',
    'NODES',
    ...table(report.nodes.map(nodeRow)),
    '',
    'GROUPS',
    ...table(report.groups.map((group) => [
      `g${group.group}`,
      group.masterNodeId === null ? 'NO MASTER' : `master node ${group.masterNodeId}`,
      group.leaseExpiresInMs === null ? 'lease -' : `lease ${formatDuration(group.leaseExpiresInMs)}`,
      `instance ${group.highestInstanceId}`,
      group.nodes.map(({ nodeId, nowInstanceId, behind }) =>
        `n${nodeId} ${nowInstanceId}${behind > 0 ? ` (-${behind})` : ''}`).join(', '),
    ])),
    '',
    'LOG (instances kept from..to, cleaned since start, snapshot at)',
    ...table(report.nodes.filter((node) => node.report !== null).map((node) => [
      `node ${node.nodeId}`,
      ...(node.report?.groups ?? []).map((group) =>
        `g${group.group} ${group.minChosenInstanceId}..${group.nowInstanceId} cleaned ${group.instancesCleaned}` +
        ` snap ${group.checkpointInstanceId < 0 ? '-' : group.checkpointInstanceId}`),
    ])),
    '',
    'LAST MINUTE (per node: sparkline, latest value)',
    ...table(chartRows(report, 'proposals/s', (sample) => sample.proposalsPerSecond)
      .concat(chartRows(report, 'KV requests/s', (sample) => sample.kvOpsPerSecond))
      .concat(chartRows(report, 'write ms', (sample) => sample.writeLatencyMs))
      .concat(chartRows(report, 'read ms', (sample) => sample.readLatencyMs))),
    '',
    'RECENT EVENTS AND ERRORS',
    ...eventLines(report),
  ];
  return lines.join('\n');
}

function nodeRow(node: NodeEntry): string[] {
  const report = node.report;
  if (report === null) return [`node ${node.nodeId}`, node.role, 'DOWN', node.endpoint ?? '(endpoint unknown)', node.error ?? 'no answer'];
  const masterOf = report.groups.filter((group) => group.isMaster).map((group) => `g${group.group}`);
  return [
    `node ${node.nodeId}`, node.role, 'up',
    node.endpoint ?? '', `up ${formatDuration(report.uptimeSeconds * 1000)}`, `keys ${report.kv.keys}`,
    `log ${report.logDiskBytes === null ? '-' : mebibytes(report.logDiskBytes)}`,
    masterOf.length === 0 ? '' : `master of ${masterOf.join(' ')}`,
  ];
}

function chartRows(report: ClusterReport, label: string, pick: (sample: HistorySample) => number | null): string[][] {
  return report.nodes.filter((node) => node.report !== null).map((node) => {
    const values = (node.report?.history ?? []).slice(-SPARK_SAMPLES).map(pick);
    const latest = [...values].reverse().find((value) => value !== null) ?? null;
    if (values.length === 0) return [label, `node ${node.nodeId}`, '(no samples yet)'];
    return [label, `node ${node.nodeId}`, sparkline(values), latest === null ? '-' : String(latest)];
  });
}

export function sparkline(values: readonly (number | null)[]): string {
  const max = Math.max(0, ...values.map((value) => value ?? 0));
  return values.map((value) => {
    if (value === null) return ' ';
    if (max === 0) return SPARKS[0];
    return SPARKS[Math.min(SPARKS.length - 1, Math.floor((value / max) * (SPARKS.length - 1) + 0.5))];
  }).join('');
}

function eventLines(report: ClusterReport): string[] {
  const events = new Map<string, { at: number; text: string; nodes: number[] }>();
  for (const node of report.nodes) {
    if (!node.reachable) {
      events.set(`down ${node.nodeId}`, { at: report.at, text: `node ${node.nodeId} does not answer: ${node.error ?? 'no answer'}`, nodes: [] });
    }
    for (const event of node.report?.events ?? []) {
      // The same change seen by several nodes within a few seconds is one line naming them all.
      const key = `${Math.floor(event.at / EVENT_MERGE_MS)} ${event.kind} ${event.text}`;
      const text = `${event.kind === 'error' ? 'ERROR ' : ''}${event.text}`;
      const seen = events.get(key) ?? { at: event.at, text, nodes: [] };
      seen.nodes.push(node.nodeId);
      events.set(key, seen);
    }
  }
  return [...events.values()].sort((a, b) => b.at - a.at).slice(0, EVENTS_SHOWN).map(({ at, text, nodes }) =>
    `  ${clock(at)}  ${nodes.length === 0 ? '' : `${nodes.length === 1 ? 'node' : 'nodes'} ${nodes.join(', ')}: `}${text}`);
}

/** Columns padded to their widest cell, indented; a row's last cell is not padded, nor pads the others. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, index) => {
      if (index < row.length - 1) widths[index] = Math.max(widths[index] ?? 0, cell.length);
    });
  }
  return rows.map((row) => `  ${row.map((cell, index) => index === row.length - 1 ? cell : cell.padEnd(widths[index] ?? 0)).join('  ')}`.trimEnd());
}

function mebibytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** HH:MM:SS in local time. */
function clock(at: number): string {
  return new Date(at).toTimeString().slice(0, 8);
}
