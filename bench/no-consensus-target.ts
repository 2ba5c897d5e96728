/**
 * The no-consensus server of `npm run bench -- kv` (no-consensus-server.ts) as a bench target: its
 * own process, driven by the same plain-HTTP generator as ours and etcd.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { KvBenchTarget } from './etcd-cluster.js';
import { kvPutRequest, plainHttpLoad } from './plain-http-load.js';
import { processTreeCpuMs, type ServerCpu } from './server-cpu.js';

const SERVER = fileURLToPath(new URL('./no-consensus-server.js', import.meta.url));
const READY_TIMEOUT_MS = 10_000;

export async function startNoConsensusTarget(options: { clients: number }): Promise<KvBenchTarget & ServerCpu> {
  // stdin is a pipe the server watches: it exits when this process does, however this one ends.
  const child = spawn(process.execPath, [SERVER], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const endpoint = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the no-consensus server did not start within ${READY_TIMEOUT_MS} ms`)),
      READY_TIMEOUT_MS);
    createInterface({ input: child.stdout }).once('line', (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { endpoint: string }).endpoint);
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error('the no-consensus server exited before it listened'));
    });
  }).catch(async (error: unknown) => {
    child.kill('SIGTERM');
    await exited;
    throw error;
  });
  const load = plainHttpLoad({
    endpoints: [endpoint], clients: options.clients,
    encode: kvPutRequest,
  });
  return {
    put: (key, value) => load.put(key, value),
    serverCpuMs: () => processTreeCpuMs(child.pid),
    async stop() {
      load.close();
      child.stdin.end();
      child.kill('SIGTERM');
      await exited;
    },
  };
}
