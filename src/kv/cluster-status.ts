/**
 * `GET /v1/cluster-status`: the whole cluster as one node sees it, for the status page and
 * `multipaxos status --watch`. The node serving it asks every other node it knows an HTTP endpoint
 * of for its `/v1/node-status`, with a short deadline, and reports those that do not answer.
 *
 * Gathering on the server (rather than the browser asking each node) keeps the page to one origin
 * (no CORS) and lets a terminal reuse it. A node knows the others' HTTP endpoints from `kv serve
 * --http-peers` (cluster up passes it) and from the fences of the groups' masters, which carry
 * their endpoint (written through the log by a member). It never fetches an endpoint a peer's report
 * merely names: that would let one answer steer this node's requests anywhere (a port scan through
 * the cluster). A node whose endpoint no one knows is listed as such, never guessed.
 *
 * Under TLS (`tls`) the peers are asked over HTTPS only, their certificates verified against the
 * cluster CA, and this node presents its own certificate: a node's certificate may read other
 * nodes' /v1/node-status (http-server.ts). The caller's token is never sent on.
 */
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { NodeReport } from './node-report.js';
import { readBoundedBody } from './bounded-body.js';

export interface NodeEntry {
  readonly nodeId: number;
  readonly role: 'member' | 'follower' | 'unknown';
  readonly endpoint: string | null;
  readonly reachable: boolean;
  /** Why the node is not in the report: unreachable, a bad answer, or no endpoint known. */
  readonly error: string | null;
  readonly report: NodeReport | null;
}

export interface GroupSummary {
  readonly group: number;
  /** The master as the answering nodes see it: the one most of them name (null: none). */
  readonly masterNodeId: number | null;
  /** The master's own view of its lease (null when it did not answer or holds none). */
  readonly leaseExpiresInMs: number | null;
  /** The highest instance any answering node is at. */
  readonly highestInstanceId: number;
  /** Per answering node: its instance and how many instances it trails the highest one. */
  readonly nodes: readonly { readonly nodeId: number; readonly nowInstanceId: number; readonly behind: number }[];
}

export interface ClusterReport {
  readonly servedBy: number;
  readonly at: number;
  readonly nodes: readonly NodeEntry[];
  readonly groups: readonly GroupSummary[];
}

const PEER_TIMEOUT_MS = 1_000;
const MAX_REPORT_BYTES = 4 * 1024 * 1024;
/** Viewers polling at once share a gathering under way or ended this recently. */
const REUSE_MS = 500;

export interface ClusterStatusOptions {
  /** This node's TLS files (read at each request: they may be rotated); peers are then asked over HTTPS only. */
  readonly tls?: () => { ca: Buffer; cert: Buffer; key: Buffer };
  /** The local IP address requests to peers leave from (as the Forwarder's). */
  readonly localAddress?: string;
  readonly timeoutMs?: number;
}

export class ClusterStatus {
  private readonly known = new Map<number, string>();
  private readonly agent: Agent;
  private readonly secureAgent: HttpsAgent;
  private readonly tls: ClusterStatusOptions['tls'];
  private readonly timeoutMs: number;
  /** The latest gathering: under way (endedAt undefined) or ended at endedAt. */
  private recent: { report: Promise<ClusterReport>; endedAt: number | undefined } | undefined;

  /** `self` builds this node's report; `configured` are the endpoints of --http-peers. */
  constructor(
    private readonly self: (known: ReadonlyMap<number, string>) => NodeReport,
    configured: ReadonlyMap<number, string>,
    options: ClusterStatusOptions = {},
  ) {
    this.tls = options.tls;
    this.timeoutMs = options.timeoutMs ?? PEER_TIMEOUT_MS;
    const bind = options.localAddress === undefined ? {} : { localAddress: options.localAddress };
    this.agent = new Agent({ keepAlive: true, maxSockets: 4, ...bind });
    this.secureAgent = new HttpsAgent({ keepAlive: true, maxSockets: 4, ...bind });
    for (const [nodeId, endpoint] of configured) this.learn(nodeId, endpoint);
  }

  /** The endpoints known now, this node's own excluded. */
  knownEndpoints(): ReadonlyMap<number, string> {
    return this.known;
  }

  /**
   * Remember where a node answers (configured, or a master's fence). Under TLS only https: URLs are
   * kept (never a fall back to plain HTTP); without it only http: ones (nothing to verify https with).
   */
  learn(nodeId: number, endpoint: string | undefined): void {
    if (endpoint === undefined || !Number.isSafeInteger(nodeId) || nodeId < 1) return;
    if (protocolOf(endpoint) !== (this.tls === undefined ? 'http:' : 'https:')) return;
    this.known.set(nodeId, endpoint);
  }

  async gather(): Promise<ClusterReport> {
    const recent = this.recent;
    if (recent !== undefined && (recent.endedAt === undefined || performance.now() - recent.endedAt < REUSE_MS)) {
      return await recent.report;
    }
    const gathering: { report: Promise<ClusterReport>; endedAt: number | undefined } = {
      report: this.gatherNow(), endedAt: undefined,
    };
    this.recent = gathering;
    try {
      return await gathering.report;
    } finally {
      gathering.endedAt = performance.now();
    }
  }

  close(): void {
    this.agent.destroy();
    this.secureAgent.destroy();
  }

  private async gatherNow(): Promise<ClusterReport> {
    const own = this.self(this.known);
    for (const { master } of own.groups) if (master !== undefined) this.learn(master.nodeId, master.endpoint);
    this.known.delete(own.nodeId);
    const roles = new Map<number, NodeEntry['role']>();
    for (const member of own.members) roles.set(member.id, 'member');
    for (const follower of own.followers) roles.set(follower.id, 'follower');
    for (const nodeId of this.known.keys()) if (!roles.has(nodeId)) roles.set(nodeId, 'unknown');
    roles.set(own.nodeId, own.follower ? 'follower' : 'member');
    const ids = [...roles.keys()].sort((a, b) => a - b);
    const nodes = await Promise.all(ids.map(async (nodeId): Promise<NodeEntry> => {
      const role = roles.get(nodeId) as NodeEntry['role'];
      if (nodeId === own.nodeId) {
        return { nodeId, role, endpoint: own.endpoint, reachable: true, error: null, report: own };
      }
      const endpoint = this.known.get(nodeId);
      if (endpoint === undefined) {
        return { nodeId, role, endpoint: null, reachable: false, error: 'HTTP endpoint not known here', report: null };
      }
      try {
        const report = await this.fetchReport(endpoint, nodeId);
        return { nodeId, role, endpoint, reachable: true, error: null, report };
      } catch (error) {
        return { nodeId, role, endpoint, reachable: false, error: (error as Error).message, report: null };
      }
    }));
    return { servedBy: own.nodeId, at: own.at, nodes, groups: summarize(nodes) };
  }

  private async fetchReport(endpoint: string, nodeId: number): Promise<NodeReport> {
    const body = await new Promise<string>((resolve, reject) => {
      const url = new URL('/v1/node-status', endpoint);
      const files = url.protocol === 'https:' ? this.tls?.() : undefined;
      const outgoing = files === undefined
        ? httpRequest(url, { agent: this.agent, method: 'GET' }, answered)
        : httpsRequest(url, { agent: this.secureAgent, method: 'GET', ca: files.ca, cert: files.cert, key: files.key },
          answered);
      function answered(incoming: IncomingMessage): void {
        readBoundedBody(incoming, outgoing, MAX_REPORT_BYTES).then(({ status, text }) => {
          if (status !== 200) reject(new Error(`it answered HTTP ${String(status)}`));
          else resolve(text);
        }, reject);
      }
      const deadline = setTimeout(() => outgoing.destroy(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      outgoing.once('close', () => clearTimeout(deadline));
      outgoing.once('error', (error: NodeJS.ErrnoException) => {
        reject(new Error(error.code === 'ECONNREFUSED' ? 'connection refused' : error.message));
      });
      outgoing.end();
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      throw new Error('its answer is not JSON');
    }
    return checkReport(parsed, nodeId);
  }
}

/** A peer's report is only shown, but still checked for the shape the page and the terminal read. */
function checkReport(value: unknown, nodeId: number): NodeReport {
  const report = value as Partial<NodeReport> | null;
  if (typeof report !== 'object' || report === null || typeof report.nodeId !== 'number' ||
    !Array.isArray(report.groups) || !Array.isArray(report.members) || !Array.isArray(report.history) ||
    !Array.isArray(report.events) || typeof report.knownEndpoints !== 'object' || report.knownEndpoints === null) {
    throw new Error('its answer is not a node report');
  }
  if (report.nodeId !== nodeId) throw new Error(`the endpoint answers as node ${report.nodeId}, not ${nodeId}`);
  for (const group of report.groups) {
    if (typeof group !== 'object' || group === null || typeof group.group !== 'number' || typeof group.nowInstanceId !== 'number') {
      throw new Error('its answer has a malformed group');
    }
  }
  return report as NodeReport;
}

function summarize(nodes: readonly NodeEntry[]): GroupSummary[] {
  const answered = nodes.filter((node) => node.report !== null).map((node) => node.report as NodeReport);
  const count = Math.max(0, ...answered.map((report) => report.groups.length));
  return Array.from({ length: count }, (_, group): GroupSummary => {
    const views = answered.flatMap((report) => {
      const status = report.groups.find((candidate) => candidate.group === group);
      return status === undefined ? [] : [{ nodeId: report.nodeId, status }];
    });
    const votes = new Map<number, number>();
    for (const { status } of views) {
      if (status.master !== undefined && status.master !== null) {
        votes.set(status.master.nodeId, (votes.get(status.master.nodeId) ?? 0) + 1);
      }
    }
    const [masterNodeId] = [...votes].sort((a, b) => b[1] - a[1] || a[0] - b[0])[0] ?? [null];
    const masterView = views.find(({ nodeId }) => nodeId === masterNodeId)?.status;
    const highestInstanceId = Math.max(0, ...views.map(({ status }) => status.nowInstanceId));
    return {
      group,
      masterNodeId,
      leaseExpiresInMs: masterView?.isMaster === true ? masterView.leaseExpiresInMs : null,
      highestInstanceId,
      nodes: views.map(({ nodeId, status }) => ({
        nodeId, nowInstanceId: status.nowInstanceId, behind: highestInstanceId - status.nowInstanceId,
      })),
    };
  });
}

function protocolOf(text: string): string | undefined {
  try {
    return new URL(text).protocol;
  } catch {
    return undefined;
  }
}
