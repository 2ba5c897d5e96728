// A KV cluster in one process for the service and HTTP tests: real nodes over TCP on loopback,
// real files, a short master lease so elections are quick, and an HTTP server per node.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MemberAddress } from '../../src/index.js';
import { KvHttpServer } from '../../src/kv/http-server.js';
import { KvService } from '../../src/kv/kv-service.js';
import { freePort, tempRoot } from '../support/local.js';

export interface KvTestCluster {
  readonly services: KvService[];
  readonly servers: KvHttpServer[];
  readonly endpoints: string[];
  readonly groups: number;
  /** The node holding group `group`'s lease with its fence current (it serves writes and reads). */
  serving(group: number, timeoutMs?: number): Promise<KvService>;
  stop(): Promise<void>;
}

export async function startKvCluster(options: { nodes?: number; groups?: number; leaseMs?: number } = {}):
Promise<KvTestCluster> {
  const count = options.nodes ?? 3;
  const groups = options.groups ?? 2;
  const root = await tempRoot('kv-cluster');
  const members: MemberAddress[] = [];
  for (let id = 1; id <= count; id++) members.push({ id, host: '127.0.0.1', port: await freePort() });
  const servers = await Promise.all(members.map(() => KvHttpServer.listen({ host: '127.0.0.1', port: 0 })));
  const services = await Promise.all(members.map(({ id }, index) => KvService.start({
    nodeId: id, members, dataDir: join(root, `n${id}`), groups, masterLeaseMs: options.leaseMs ?? 1_000,
    httpEndpoint: (servers[index] as KvHttpServer).endpoint,
  })));
  services.forEach((service, index) => servers[index]?.attach(service));
  let stopped = false;
  return {
    services, servers, groups, endpoints: servers.map((server) => server.endpoint),
    async serving(group, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = services.find((service) => service.status()[group]?.serving === true);
        if (found !== undefined) return found;
        if (Date.now() > deadline) throw new Error(`no node serves group ${group} within ${timeoutMs} ms`);
        await sleep(20);
      }
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(servers.map((server) => server.close()));
      await Promise.all(services.map((service) => service.stop()));
    },
  };
}

/** A key of the given group (keys spread over groups by hash). */
export function keyInGroup(service: KvService, group: number, prefix = 'key'): string {
  for (let i = 0; ; i++) {
    const key = `${prefix}-${i}`;
    if (service.groupOf(key) === group) return key;
  }
}
