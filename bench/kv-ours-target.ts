/**
 * Our side of `npm run bench -- kv`: the product as a user runs it. `multipaxos cluster up` starts
 * three `kv serve` processes (fsync on) in a temporary directory; puts go through KvClient, which
 * sends each key's write to its group's master, as etcd's puts go to its leader, or (`plainHttp`)
 * as plain HTTP/1.1 `PUT /v1/kv/{key}` requests spread round-robin over the three nodes, as through
 * a load balancer: a node that is not the key's master forwards the put to it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { KvClient } from '../src/kv/client.js';
import type { KvBenchTarget } from './etcd-cluster.js';
import { CPU_PROFILE_DIR_ENV } from './node-cpu-profile.js';
import { kvPutRequest, plainHttpLoad } from './plain-http-load.js';
import { processTreeCpuMs, type ServerCpu } from './server-cpu.js';

const CLI = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const CPU_PROFILE_PRELOAD = new URL('./node-cpu-profile.js', import.meta.url).href;
const READY_TIMEOUT_MS = 60_000;

export interface OursTargetOptions {
  readonly groups: number;
  readonly clients: number;
  readonly tls?: boolean;
  /** KvClient's exactly-once sessions (its default) or not, to measure what they cost. */
  readonly sessions?: boolean;
  /** Plain HTTP spread over the nodes instead of KvClient (tls and sessions do not apply). */
  readonly plainHttp?: boolean;
  /** The CLI that runs `cluster up` (default this build's): another build's, to compare two commits. */
  readonly cli?: string;
  /** Write a CPU profile of every node process into this directory when it stops (node-cpu-profile.ts). */
  readonly nodeCpuProfileDir?: string;
  /** cluster up --masters (undefined: its default). */
  readonly masters?: 'spread' | 'together';
}

export async function startOursTarget(options: OursTargetOptions): Promise<KvBenchTarget & ServerCpu> {
  const dir = await mkdtemp(join(tmpdir(), 'multipaxos-kv-bench-'));
  // cluster up refuses ports in use; a few random bases find free ones.
  for (let attempt = 0; ; attempt++) {
    const basePort = 20_000 + Math.floor(Math.random() * 200) * 100;
    try {
      return await startCluster(dir, basePort, options);
    } catch (error) {
      if (attempt >= 4 || !String(error).includes('is in use')) {
        await rm(dir, { recursive: true, force: true });
        throw error;
      }
    }
  }
}

async function startCluster(
  dir: string, basePort: number, options: OursTargetOptions,
): Promise<KvBenchTarget & ServerCpu> {
  const tls = options.tls === true && options.plainHttp !== true;
  const data = join(dir, `data-${basePort}`);
  const child = spawn(process.execPath, [options.cli ?? CLI, 'cluster', 'up', '--dir', data,
    '--base-port', String(basePort), '--groups', String(options.groups), '--json', ...(tls ? ['--tls'] : []),
    ...(options.masters === undefined ? [] : ['--masters', options.masters])],
  { stdio: ['ignore', 'pipe', 'pipe'], env: nodeEnvironment(options.nodeCpuProfileDir) });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // The reason comes first (a usage error is followed by the whole usage text): keep the head.
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr = `${stderr}${chunk.toString('utf8')}`.slice(0, 4_000); });
  const endpoints = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`our cluster was not ready within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS);
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const event = JSON.parse(line) as { event: string; endpoints?: string[] };
      if (event.event === 'ready') {
        clearTimeout(timer);
        resolve(event.endpoints as string[]);
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`cluster up exited before it was ready: ${stderr.trim().split('\n')[0] ?? ''}`));
    });
  }).catch(async (error: unknown) => {
    child.kill('SIGTERM');
    await exited;
    throw error;
  });
  const stopCluster = async (): Promise<void> => {
    child.kill('SIGTERM');
    await exited;
    await rm(dir, { recursive: true, force: true });
  };
  if (options.plainHttp === true) {
    const load = plainHttpLoad({
      endpoints, clients: options.clients,
      encode: kvPutRequest,
    });
    return {
      put: (key, value) => load.put(key, value),
      serverCpuMs: () => processTreeCpuMs(child.pid),
      async stop() {
        load.close();
        await stopCluster();
      },
    };
  }
  // With --tls, the files cluster up made: its CA, and the admin token (the role does not change the cost).
  const client = new KvClient({
    endpoints, timeoutMs: 10_000, sessions: options.sessions ?? true,
    ...(tls ? { ca: await readFile(join(data, 'tls', 'ca.crt')),
      token: (await readFile(join(data, 'tls', 'admin.token'), 'utf8')).trim() } : {}),
  });
  return {
    async put(key, value) {
      await client.put(key, value);
    },
    serverCpuMs: () => processTreeCpuMs(child.pid),
    async stop() {
      client.close();
      await stopCluster();
    },
  };
}

/** The environment of `cluster up` and so of its nodes: with a profile directory, each profiles itself. */
function nodeEnvironment(profileDir: string | undefined): NodeJS.ProcessEnv {
  if (profileDir === undefined) return process.env;
  const inherited = process.env.NODE_OPTIONS ?? '';
  return { ...process.env, [CPU_PROFILE_DIR_ENV]: resolve(profileDir),
    NODE_OPTIONS: `${inherited} --import ${CPU_PROFILE_PRELOAD}`.trim() };
}
