/**
 * The transport a PaxosNode runs on: the TCP transport built from the node's options, or one the
 * caller supplied. Either way the node sees one shape: the `Transport` itself (messages, peer
 * addresses, group identities), and optionally its address, counters, and close.
 */
import { TcpTransport } from '../io/tcp-transport.js';
import type { Transport } from '../runtime/interfaces.js';
import type { Random } from '../util/random.js';
import type { NodeAddress, ResolvedNodeOptions } from './node-options.js';

/**
 * An application's own bytes to and from peers over the node's transport connections (the TCP
 * transport's application frames), for a service that embeds the node: the KV service forwards
 * requests to a group's master this way. What arrives is untrusted input for the application to
 * check; `from` is the peer the connection authenticated, by its certificate when `certifiedPeers`.
 */
export interface ApplicationChannel {
  /** False when it cannot go now (no open connection to the peer): take another way. */
  send(to: number, body: Uint8Array): boolean;
  /** The single receiver; `body` is valid only until it returns. */
  onReceive(handler: (from: number, body: Uint8Array) => void): void;
  /**
   * The hosts bytes to `to` travel between now (its configured address, its connection's remote
   * address); empty without an open connection. Without mutual TLS a secret goes only to loopback.
   */
  peerHosts(to: number): readonly string[];
  /**
   * The open connection to `to`, as a token to compare (undefined without one): another token
   * means another connection since, perhaps to a restarted process that never saw what went before.
   */
  connectionOf(to: number): object | undefined;
  /** Peers are authenticated by certificates that name their node ids (mutual TLS). */
  readonly certifiedPeers: boolean;
}

export interface NodeTransport {
  readonly transport: Transport;
  /** The TCP transport's application channel (a custom transport has none). */
  readonly application?: ApplicationChannel;
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
    application: {
      send: (to, body) => transport.sendApplication(to, body),
      onReceive: (handler) => transport.onApplication(handler),
      peerHosts: (to) => transport.peerHosts(to),
      connectionOf: (to) => transport.connectionOf(to),
      certifiedPeers: transport.certifiedPeers,
    },
    close: () => transport.close(),
    address: () => transport.address(),
    stats: () => ({ ...transport.stats() }),
    flushNow: () => transport.flushNow(),
  };
}
