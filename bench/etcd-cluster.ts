/**
 * A local 3-member etcd cluster for benchmarks: real etcd processes on 127.0.0.1 with free ports,
 * data dirs in a temporary directory, etcd's defaults otherwise (fsync on). Puts go through etcd's
 * v3 JSON gateway (grpc-gateway, `POST /v3/kv/put` with base64 key and value) over node:http.
 *
 * Every process started here is killed, and its data removed, by `stop()`, and also when this
 * process exits or is interrupted (SIGINT, SIGTERM) while a cluster is up.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { accessSync, closeSync, constants, openSync, rmSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePorts } from '../src/testing/free-port.js';
import { plainHttpLoad, type PlainHttpLoad } from './plain-http-load.js';

/** What kv-bench drives: the same shape as the "ours" target. */
export interface KvBenchTarget {
  put(key: string, value: string): Promise<void>;
  stop(): Promise<void>;
}

export interface EtcdCluster {
  /** Client URLs, one per member (`http://127.0.0.1:PORT`). */
  readonly endpoints: readonly string[];
  /** The client URL of the member that is leader now. */
  leaderEndpoint(): Promise<string>;
  /** SIGTERM, SIGKILL after 5 s, then removes the data directory. Idempotent. */
  stop(): Promise<void>;
}

export interface EtcdClusterOptions {
  readonly binary: string;
  /** The temporary directory is made inside this one (default: the OS temp dir). */
  readonly dataRoot?: string;
  /** How long to wait for all members to be healthy with a leader (default 30 s). */
  readonly startTimeoutMs?: number;
}

const MEMBERS = 3;
const START_TIMEOUT_MS = 30_000;
const KILL_AFTER_MS = 5_000;
const PROBE_TIMEOUT_MS = 1_000;
/** etcd's default quota is 2 GiB, which long runs of 2 KiB puts can reach (every revision is kept). */
const QUOTA_BACKEND_BYTES = 8 * 2 ** 30;
const INSTALL_HINT = 'install it with "apt-get install etcd-server" (Debian)';

/** The etcd binary to use: `explicit` if given and executable, else `etcd` on PATH; undefined if none. */
export function findEtcd(explicit?: string): string | undefined {
  if (explicit !== undefined) return isExecutable(explicit) ? explicit : undefined;
  for (const directory of (process.env.PATH ?? '').split(delimiter)) {
    if (directory === '') continue;
    const candidate = join(directory, 'etcd');
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** `3.4.23` from `etcd --version`; undefined if the binary does not run. */
export function etcdVersion(binary: string): string | undefined {
  const run = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000, env: etcdEnvironment() });
  if (run.status !== 0) return undefined;
  return /etcd Version:\s*(\S+)/.exec(run.stdout)?.[1] ?? 'unknown version';
}

export const ETCD_NOT_FOUND = `etcd not found: ${INSTALL_HINT} to compare; running ours only`;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup of live clusters when the process ends abnormally.

interface LiveCluster {
  readonly children: ChildProcess[];
  /** Client URLs, in the order of children. */
  readonly endpoints: string[];
  readonly directory: string;
}

const live = new Set<LiveCluster>();

function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** SIGKILLs every live member and removes the data directories, synchronously (for 'exit'). */
function killAllNow(): void {
  for (const cluster of live) {
    for (const child of cluster.children) {
      if (isRunning(child)) child.kill('SIGKILL');
    }
    rmSync(cluster.directory, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  }
  live.clear();
}

function onExit(): void {
  killAllNow();
}

/** Interrupted: SIGKILL every member, let them die (at most 2 s) so nothing writes on, clean up, exit. */
function onSignal(signal: NodeJS.Signals): void {
  removeHandlers();
  // A second interrupt while cleaning up exits at once (the 'exit' handler still kills).
  process.once(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143));
  process.on('exit', onExit);
  const children = [...live].flatMap((cluster) => cluster.children).filter(isRunning);
  const deaths = children.map((child) => new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  }));
  void Promise.race([Promise.all(deaths), sleep(2_000)]).then(() => {
    killAllNow();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

function addLive(cluster: LiveCluster): void {
  if (live.size === 0) {
    process.on('exit', onExit);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  live.add(cluster);
}

function removeLive(cluster: LiveCluster): void {
  live.delete(cluster);
  if (live.size === 0) removeHandlers();
}

function removeHandlers(): void {
  process.off('exit', onExit);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping.

export async function startEtcdCluster(options: EtcdClusterOptions): Promise<EtcdCluster> {
  // Free ports are found by binding port 0 and letting go, so another process can take one in
  // between; etcd then exits at once with "address already in use", and a fresh set is tried.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options);
    } catch (error) {
      if (attempt >= 3 || !(error instanceof PortTakenError)) throw error;
    }
  }
}

class PortTakenError extends Error {}

async function startOnce(options: EtcdClusterOptions): Promise<EtcdCluster> {
  const directory = await mkdtemp(join(options.dataRoot ?? tmpdir(), 'etcd-bench-'));
  const cluster: LiveCluster = { children: [], endpoints: [], directory };
  addLive(cluster);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= stopCluster(cluster));
  try {
    const ports = await freePorts(2 * MEMBERS);
    const names = Array.from({ length: MEMBERS }, (_, index) => `member${index}`);
    const peerUrls = names.map((_, index) => `http://127.0.0.1:${ports[2 * index] as number}`);
    const endpoints = names.map((_, index) => `http://127.0.0.1:${ports[2 * index + 1] as number}`);
    const initialCluster = names.map((name, index) => `${name}=${peerUrls[index] as string}`).join(',');
    const token = `kv-bench-${process.pid}-${randomUUID()}`;
    cluster.endpoints.push(...endpoints);
    const exits: string[] = [];
    names.forEach((name, index) => {
      const log = openSync(join(directory, `${name}.log`), 'a');
      const child = spawn(options.binary, [
        '--name', name,
        '--data-dir', join(directory, `${name}.etcd`),
        '--listen-peer-urls', peerUrls[index] as string,
        '--initial-advertise-peer-urls', peerUrls[index] as string,
        '--listen-client-urls', endpoints[index] as string,
        '--advertise-client-urls', endpoints[index] as string,
        '--initial-cluster', initialCluster,
        '--initial-cluster-state', 'new',
        '--initial-cluster-token', token,
        '--quota-backend-bytes', String(QUOTA_BACKEND_BYTES),
        '--logger', 'zap', '--log-outputs', 'stderr', '--log-level', 'warn',
      ], { stdio: ['ignore', log, log], env: etcdEnvironment() });
      closeSync(log);
      cluster.children.push(child);
      child.on('error', (error) => exits.push(`${name}: ${error.message}`));
      child.on('exit', (code, signal) => {
        if (stopping === undefined) exits.push(`${name} exited (${signal ?? `code ${String(code)}`})`);
      });
    });
    await waitUntilReady(endpoints, exits, options.startTimeoutMs ?? START_TIMEOUT_MS, directory, names);
    return { endpoints, leaderEndpoint: () => findLeader(endpoints, START_TIMEOUT_MS), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * A leader told to stop first tries to hand its leadership over, and when its followers are
 * stopping too that hangs until etcd gives up (about 7 s). So the followers stop first; the leader,
 * with no follower left to hand over to, then exits at once.
 */
async function stopCluster(cluster: LiveCluster): Promise<void> {
  const running = cluster.children.filter(isRunning);
  const leader = running.length < 2 ? undefined
    : await findLeader(cluster.endpoints, 0).then((endpoint) => cluster.children[cluster.endpoints.indexOf(endpoint)],
      () => undefined);
  await Promise.all(cluster.children.filter((child) => child !== leader).map((child) => terminate(child)));
  if (leader !== undefined) await terminate(leader);
  await rm(cluster.directory, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
  removeLive(cluster);
}

async function terminate(child: ChildProcess): Promise<void> {
  if (!isRunning(child)) return;
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (isRunning(child)) child.kill('SIGKILL');
  }, KILL_AFTER_MS);
  await gone;
  clearTimeout(timer);
}

/** etcd reads its flags from ETCD_* variables too; none of the caller's may leak in. */
function etcdEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('ETCD_')));
}

async function waitUntilReady(endpoints: readonly string[], exits: readonly string[], timeoutMs: number,
  directory: string, names: readonly string[]): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  let problem = 'no member answered yet';
  for (;;) {
    if (exits.length > 0) {
      const logs = await logTails(directory, names);
      const message = `etcd failed to start: ${exits.join('; ')}\n${logs}`;
      throw logs.includes('address already in use') ? new PortTakenError(message) : new Error(message);
    }
    const health = await Promise.all(endpoints.map((endpoint) => probe(`${endpoint}/health`, 'GET')));
    const sick = health.findIndex((reply) => reply.status !== 200 || !/"health"\s*:\s*"?true/.test(reply.body));
    if (sick < 0) {
      try {
        await findLeader(endpoints, 0);
        return;
      } catch (error) {
        problem = (error as Error).message;
      }
    } else {
      const reply = health[sick];
      problem = `${endpoints[sick] as string}/health: ${reply?.status ?? '?'} ${reply?.body.trim() ?? ''}`;
    }
    if (performance.now() >= deadline) {
      throw new Error(`etcd cluster not healthy with a leader within ${timeoutMs / 1000} s (${problem})\n` +
        await logTails(directory, names));
    }
    await sleep(100);
  }
}

async function logTails(directory: string, names: readonly string[]): Promise<string> {
  const tails = await Promise.all(names.map(async (name) => {
    const text = await readFile(join(directory, `${name}.log`), 'utf8').catch(() => '');
    const lines = text.trim().split('\n').slice(-5).map((line) => `    ${line.slice(0, 300)}`);
    return `  ${name}.log (last lines):\n${lines.join('\n')}`;
  }));
  return tails.join('\n');
}

interface MemberStatus {
  readonly header?: { readonly member_id?: string; readonly raft_term?: string };
  readonly leader?: string;
  readonly raftTerm?: string;
}

/** The endpoint of the member that reports itself as leader (highest term wins), retrying until timeoutMs. */
async function findLeader(endpoints: readonly string[], timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const statuses = await Promise.all(endpoints.map(async (endpoint) => {
      const reply = await probe(`${endpoint}/v3/maintenance/status`, 'POST', '{}');
      if (reply.status !== 200) return undefined;
      try {
        return JSON.parse(reply.body) as MemberStatus;
      } catch {
        return undefined;
      }
    }));
    let best: { endpoint: string; term: bigint } | undefined;
    statuses.forEach((status, index) => {
      const self = status?.header?.member_id;
      if (self === undefined || status?.leader !== self || self === '0') return;
      const term = BigInt(status.raftTerm ?? status.header?.raft_term ?? '0');
      if (best === undefined || term > best.term) best = { endpoint: endpoints[index] as string, term };
    });
    if (best !== undefined) return best.endpoint;
    if (performance.now() >= deadline) throw new Error('no etcd member reports itself as leader');
    await sleep(100);
  }
}

interface ProbeReply {
  readonly status: number;
  readonly body: string;
}

/** One short request on a fresh connection; failures come back as status 0. */
function probe(url: string, method: 'GET' | 'POST', body?: string): Promise<ProbeReply> {
  return new Promise((resolve) => {
    const req = request(url, { method, agent: false, timeout: PROBE_TIMEOUT_MS,
      headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', (error) => resolve({ status: 0, body: error.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)));
    req.on('error', (error) => resolve({ status: 0, body: error.message }));
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Puts through the JSON gateway.

export interface EtcdPutOptions {
  /** A keep-alive agent to reuse connections (default: a shared one). */
  readonly agent?: Agent;
  /** The request fails after this long without progress (default 10 s). */
  readonly timeoutMs?: number;
}

const sharedAgent = new Agent({ keepAlive: true });

/** `POST {endpoint}/v3/kv/put` with base64 key and value; resolves once the whole reply is in, rejects on non-2xx. */
export function etcdPut(endpoint: string, key: string, value: string, options: EtcdPutOptions = {}): Promise<void> {
  return putEncoded(endpoint, JSON.stringify({ key: base64(key), value: base64(value) }), options);
}

function putEncoded(endpoint: string, body: string, options: EtcdPutOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const req = request(`${endpoint}/v3/kv/put`, {
      method: 'POST', agent: options.agent ?? sharedAgent, timeout: timeoutMs,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    }, (res) => {
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        res.resume();
        res.on('end', resolve);
      } else {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (text.length < 500) text += chunk;
        });
        res.on('end', () => reject(new Error(`etcd put: HTTP ${status}: ${text.trim().slice(0, 500)}`)));
      }
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`etcd put: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

// ---------------------------------------------------------------------------------------------
// The benchmark target.

export interface EtcdTargetOptions {
  readonly binary: string;
  /** The most clients that will put at once: each member's agent keeps this many connections. */
  readonly clients: number;
  readonly dataRoot?: string;
  /**
   * Puts spread round-robin over all three members (as through a load balancer; a follower hands
   * each to the leader over etcd's own peer connections) rather than all sent to the leader.
   */
  readonly spread?: boolean;
}

/**
 * A fresh 3-member cluster; puts go over keep-alive connections to the leader's client URL, or to
 * every member in turn (`spread`), through the same plain-HTTP generator as ours and the
 * no-consensus server (plain-http-load.ts).
 */
export async function startEtcdTarget(options: EtcdTargetOptions): Promise<KvBenchTarget> {
  const cluster = await startEtcdCluster({ binary: options.binary, dataRoot: options.dataRoot });
  let load: PlainHttpLoad | undefined;
  try {
    const endpoints = options.spread === true ? cluster.endpoints : [await cluster.leaderEndpoint()];
    // Every put of a cell carries the same value: encode it once.
    let lastValue = '';
    let lastValueBase64 = '';
    load = plainHttpLoad({
      endpoints, clients: Math.max(1, options.clients),
      encode: (key, value) => {
        if (value !== lastValue) {
          lastValue = value;
          lastValueBase64 = base64(value);
        }
        return { method: 'POST', path: '/v3/kv/put', body: `{"key":"${base64(key)}","value":"${lastValueBase64}"}` };
      },
    });
    const started = load;
    return {
      put: (key, value) => started.put(key, value),
      async stop(): Promise<void> {
        started.close();
        await cluster.stop();
      },
    };
  } catch (error) {
    load?.close();
    await cluster.stop();
    throw error;
  }
}
