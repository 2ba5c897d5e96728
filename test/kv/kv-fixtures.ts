// A KV cluster in one process for the service and HTTP tests: real nodes over TCP on loopback,
// real files, a short master lease so elections are quick, and an HTTP server per node.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FollowerAddress, MemberAddress } from '../../src/index.js';
import { KvError } from '../../src/kv/kv-error.js';
import { KvHttpServer } from '../../src/kv/http-server.js';
import { KvService } from '../../src/kv/kv-service.js';
import type { WatchOptions } from '../../src/kv/watch-hub.js';
import { freePort, tempRoot } from '../support/local.js';

export interface KvTestCluster {
  readonly services: KvService[];
  readonly servers: KvHttpServer[];
  readonly endpoints: string[];
  readonly groups: number;
  /** The node holding group `group`'s lease with its fence current (it serves writes and reads). */
  serving(group: number, timeoutMs?: number): Promise<KvService>;
  /**
   * Run a call on the node serving the group. On a loaded machine a lease can lapse between finding
   * the master and using it; such a call is refused (NOT_MASTER / NO_MASTER, certainly not applied)
   * and is made again on whoever serves next.
   */
  onMaster<T>(group: number, call: (master: KvService) => Promise<T>): Promise<T>;
  stop(): Promise<void>;
}

export async function startKvCluster(
  options: { nodes?: number; groups?: number; leaseMs?: number; followers?: number; watch?: WatchOptions } = {},
): Promise<KvTestCluster> {
  const count = options.nodes ?? 3;
  const groups = options.groups ?? 2;
  const root = await tempRoot('kv-cluster');
  const members: MemberAddress[] = [];
  for (let id = 1; id <= count; id++) members.push({ id, host: '127.0.0.1', port: await freePort() });
  // Followers get the ids after the members' and follow member 1 (services[count..] are followers).
  const followers: FollowerAddress[] = [];
  for (let i = 1; i <= (options.followers ?? 0); i++) {
    followers.push({ id: count + i, host: '127.0.0.1', port: await freePort(), follows: 1 });
  }
  const nodes = [...members, ...followers];
  const servers = await Promise.all(nodes.map(() => KvHttpServer.listen({ host: '127.0.0.1', port: 0 })));
  // If one node fails to start (a port taken meanwhile), stop the others so the test does not hang.
  const starting = await Promise.allSettled(nodes.map(({ id }, index) => KvService.start({
    nodeId: id, members, followers, dataDir: join(root, `n${id}`), groups, masterLeaseMs: options.leaseMs ?? 2_000,
    httpEndpoint: (servers[index] as KvHttpServer).endpoint, watch: options.watch,
  })));
  const failed = starting.find((outcome) => outcome.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(servers.map((server) => server.close()));
    await Promise.all(starting.map((outcome) => outcome.status === 'fulfilled' ? outcome.value.stop() : undefined));
    throw (failed as PromiseRejectedResult).reason;
  }
  const services = starting.map((outcome) => (outcome as PromiseFulfilledResult<KvService>).value);
  services.forEach((service, index) => servers[index]?.attach(service));
  const serving = async (group: number, timeoutMs = 10_000): Promise<KvService> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = services.find((service) => service.status()[group]?.serving === true);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no node serves group ${group} within ${timeoutMs} ms`);
      await sleep(20);
    }
  };
  let stopped = false;
  return {
    services, servers, groups, endpoints: servers.map((server) => server.endpoint),
    serving,
    async onMaster(group, call) {
      for (let attempt = 1; ; attempt++) {
        const master = await serving(group);
        try {
          return await call(master);
        } catch (error) {
          const refused = error instanceof KvError && (error.code === 'NOT_MASTER' || error.code === 'NO_MASTER');
          if (!refused || attempt >= 5) throw error;
        }
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
