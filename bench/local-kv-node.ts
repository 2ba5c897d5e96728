/** What the benchmarks that run a KV node in their own process share: a free port, and waiting until it serves. */
import type { KvService } from '../src/kv/kv-service.js';

export { freePort } from '../src/testing/free-port.js';

/** Until every group of the node has a master here and serves (30 s at most). */
export async function waitServing(service: KvService): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (!service.status().every((group) => group.serving)) {
    if (performance.now() > deadline) throw new Error('the node did not become master');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
