/**
 * The transport a PaxosNode runs on: the TCP transport built from the node's options, or one the
 * caller supplied. Either way the node sees one shape: the `Transport` itself (messages, peer
 * addresses, group identities), and optionally its address, counters, and close.
 */
import { TcpTransport } from '../io/tcp-transport.js';
import type { Transport } from '../runtime/interfaces.js';
import type { Random } from '../util/random.js';
import type { NodeAddress, ResolvedNodeOptions } from './node-options.js';

export interface NodeTransport {
  readonly transport: Transport;
  close?(): Promise<void>;
  address?(): NodeAddress | undefined;
  stats?(): Readonly<Record<string, unknown>>;
  /** Send what is queued now rather than at the end of the turn (see TcpTransport.flushNow). */
  flushNow?(): void;
}

export async function openTcpTransport(options: ResolvedNodeOptions, random: Random): Promise<NodeTransport> {
  const everyone = [...options.members, ...options.followers];
  const own = everyone.find((node) => node.id === options.nodeId) as NodeAddress;
  const peers = new Map(everyone.map((node) => [node.id, { host: node.host, port: node.port }]));
  const transport = await TcpTransport.start({
    nodeId: options.nodeId,
    clusterId: options.clusterId,
    listen: options.listen ?? { host: own.host, port: own.port },
    localAddress: options.localAddress,
    peers,
    groupCount: options.groups,
    maxFrameBytes: options.maxFrameBytes,
    tls: options.tls,
    logger: options.logger,
    random,
  });
  return {
    transport,
    close: () => transport.close(),
    address: () => transport.address(),
    stats: () => ({ ...transport.stats() }),
    flushNow: () => transport.flushNow(),
  };
}
