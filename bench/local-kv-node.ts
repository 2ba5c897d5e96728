/** What the benchmarks that run a KV node in their own process share: a free port, and waiting until it serves. */
import { createServer, type AddressInfo } from 'node:net';
import type { KvService } from '../src/kv/kv-service.js';

/** A loopback port free at the moment of asking. */
export async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Until every group of the node has a master here and serves (30 s at most). */
export async function waitServing(service: KvService): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (!service.status().every((group) => group.serving)) {
    if (performance.now() > deadline) throw new Error('the node did not become master');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
