/**
 * `multipaxos status --watch`: the status page in a terminal. Every interval it asks the first
 * endpoint that answers for `/v1/cluster-status` and prints the view (src/cli/cluster-view.ts):
 * redrawn in place (ANSI clear screen) when standard output is a terminal, one snapshot after the
 * other otherwise (a file, a pipe). Ctrl-C or SIGTERM ends it with status 0.
 */
import { Agent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { mayCarryCredentials } from '../kv/cleartext-guard.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterReport } from '../kv/cluster-status.js';
import type { ClientSecurity } from './client-security.js';
import { renderClusterView } from './cluster-view.js';
import { stopSignal } from './stop-signal.js';
import { readBoundedBody } from '../kv/bounded-body.js';

export interface WatchOptions {
  readonly endpoints: readonly string[];
  readonly intervalMs: number;
  readonly timeoutMs: number;
  /** One JSON line a view: the cluster report, or {"error", "failures"} when no node answers. */
  readonly json?: boolean;
  /** --token, --ca, --cert/--key: the token goes only over HTTPS (or to loopback). */
  readonly security?: ClientSecurity;
}

const CLEAR_SCREEN = '\u001b[H\u001b[2J';
const MAX_REPORT_BYTES = 16 * 1024 * 1024;

export async function watchStatus(options: WatchOptions): Promise<number> {
  const stop = stopSignal({ unrefChannel: true });
  const stopping = new AbortController();
  void stop.requested.then(() => stopping.abort());
  // A reader that went away (`| head`) ends the watch as Ctrl-C would.
  const readerGone = (): void => stopping.abort();
  process.stdout.on('error', readerGone);
  const agents = {
    http: new Agent({ keepAlive: true, maxSockets: 1 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 1 }),
  };
  const terminal = process.stdout.isTTY === true;
  try {
    while (!stopping.signal.aborted) {
      const view = await currentView(options, agents);
      if (stopping.signal.aborted) break;
      if (options.json === true) process.stdout.write(`${JSON.stringify(view.report ?? { error: 'NO_ANSWER', failures: view.failures })}\n`);
      else if (terminal) process.stdout.write(`${CLEAR_SCREEN}${view.text}\n`);
      else process.stdout.write(`--- ${new Date().toISOString()}\n${view.text}\n\n`);
      await sleep(options.intervalMs, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
  } finally {
    agents.http.destroy();
    agents.https.destroy();
    process.stdout.off('error', readerGone);
  }
  return 0;
}

interface View {
  readonly text: string;
  readonly report?: ClusterReport;
  readonly failures: readonly string[];
}

/** The view from the first endpoint that answers, or why none did. */
async function currentView(options: WatchOptions, agents: Agents): Promise<View> {
  const failures: string[] = [];
  for (const endpoint of options.endpoints) {
    try {
      const report = await fetchClusterStatus(endpoint, options.timeoutMs, agents, options.security);
      return { text: renderClusterView(report), report, failures };
    } catch (error) {
      failures.push(`${endpoint}: ${(error as Error).message}`);
    }
  }
  const lines = failures.map((failure) => `  ${failure}`);
  return { text: [`no node answers /v1/cluster-status (at ${new Date().toTimeString().slice(0, 8)}):`, ...lines].join('\n'), failures };
}

interface Agents {
  readonly http?: Agent;
  readonly https?: HttpsAgent;
}

export async function fetchClusterStatus(endpoint: string, timeoutMs: number, agents: Agents = {},
  security: ClientSecurity = {}): Promise<ClusterReport> {
  const url = new URL('/v1/cluster-status', endpoint);
  if (security.token !== undefined && !mayCarryCredentials(url)) {
    throw new Error('not sending the token over plain HTTP to a host that is not this machine (use https://)');
  }
  const headers: Record<string, string> = security.token === undefined ? {} : { authorization: `Bearer ${security.token}` };
  const text = await new Promise<string>((resolve, reject) => {
    const options = url.protocol === 'https:'
      ? { method: 'GET', headers, agent: agents.https, ca: security.ca, cert: security.cert, key: security.key }
      : { method: 'GET', headers, agent: agents.http };
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const outgoing = send(url, options, (incoming) => {
      readBoundedBody(incoming, outgoing, MAX_REPORT_BYTES).then(({ status, text: body }) => {
        if (status === 200) resolve(body);
        else reject(new Error(`HTTP ${String(status)}: ${body.slice(0, 200).trim()}`));
      }, reject);
    });
    const deadline = setTimeout(() => outgoing.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    outgoing.once('close', () => clearTimeout(deadline));
    outgoing.once('error', reject);
    outgoing.end();
  });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('the answer is not JSON');
  }
  const report = parsed as Partial<ClusterReport> | null;
  if (typeof report !== 'object' || report === null || !Array.isArray(report.nodes) || !Array.isArray(report.groups) ||
    typeof report.servedBy !== 'number' || typeof report.at !== 'number') {
    throw new Error('the answer is not a cluster status (is this a multipaxos KV node?)');
  }
  return report as ClusterReport;
}
