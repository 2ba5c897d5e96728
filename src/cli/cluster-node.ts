/**
 * One run of one `cluster up` node: the `multipaxos kv serve` child process, its standard error
 * passed on prefixed with the node, and whether it got as far as serving (its `--json` started line).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { clusterSecretsPaths } from '../security/cluster-secrets.js';

const CLI = fileURLToPath(new URL('./main.js', import.meta.url));

export interface ClusterShape {
  readonly nodes: number;
  readonly groups: number;
  readonly basePort: number;
  readonly host: string;
  readonly masterLeaseMs: number;
  /** Mutual TLS between nodes, HTTPS and an admin token (files in DIR/tls). */
  readonly tls?: boolean;
}

export interface NodeExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** How long the process lived, in ms. */
  readonly ranMs: number;
  /** Whether it printed its started line (it was serving) before it exited. */
  readonly started: boolean;
}

export interface NodeRun {
  readonly child: ChildProcess;
  readonly exited: Promise<NodeExit>;
  running(): boolean;
}

/** The kv serve command line of node `id`; the same for every run, so a restart resumes its data. */
export function nodeArgs(id: number, shape: ClusterShape, dir: string, flags: Record<string, unknown>): string[] {
  const peers = Array.from({ length: shape.nodes }, (_, index) => index + 1)
    .map((peer) => `${peer}=${shape.host}:${shape.basePort + 100 + peer}`).join(',');
  const httpPeers = Array.from({ length: shape.nodes }, (_, index) => index + 1)
    .map((peer) => `${peer}=${shape.host}:${shape.basePort + peer}`).join(',');
  const args = [CLI, 'kv', 'serve', '--id', String(id), '--listen', `${shape.host}:${shape.basePort + 100 + id}`,
    '--http', `${shape.host}:${shape.basePort + id}`, '--peers', peers, '--http-peers', httpPeers, '--data', join(dir, `node-${id}`),
    '--groups', String(shape.groups), '--master-lease', String(shape.masterLeaseMs), '--json'];
  if (flags.sync === false) args.push('--sync=false');
  if (flags.masters !== undefined) args.push('--masters', String(flags.masters));
  if (shape.tls === true) {
    const secrets = clusterSecretsPaths(dir);
    const { cert, key } = secrets.node(id);
    args.push('--tls-ca', secrets.ca, '--tls-cert', cert, '--tls-key', key, '--tokens', secrets.tokens);
  }
  // Passed through as given; kv serve checks them (and a bad one stops every node at start-up).
  if (flags['segment-mb'] !== undefined) args.push('--segment-mb', String(flags['segment-mb'] as number));
  for (const passed of ['log-hold', 'snapshot-every', 'clean-interval']) {
    if (flags[passed] !== undefined) args.push(`--${passed}`, String(flags[passed] as number));
  }
  return args;
}

export function startNodeRun(id: number, args: readonly string[]): NodeRun {
  const startedAt = performance.now();
  // An IPC channel: kv serve stops by itself when it closes, which the kernel does when this
  // process dies in any way, SIGKILL included (so no node outlives cluster up holding its ports).
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let started = false;
  let running = true;
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    if (line.startsWith('{"event":"started"')) started = true;
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    console.error(`[node ${id}] ${line}`);
  });
  child.once('exit', () => { running = false; });
  // 'close' comes after 'exit' and after the last of its output, so `started` is final by then.
  const exited = new Promise<NodeExit>((done) => child.once('close', (code, signal) => {
    done({ code, signal, ranMs: performance.now() - startedAt, started });
  }));
  return { child, exited, running: () => running };
}
