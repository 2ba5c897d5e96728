/**
 * The options of TcpTransport, their defaults, and their validation. Options come from operators'
 * configuration files, so every mistake is reported as a BAD_OPTIONS error naming the field rather
 * than surfacing later as a confusing network failure.
 */
import { randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import { SILENT_LOGGER, type Logger } from '../runtime/interfaces.js';
import { SeededRandom, type Random } from '../util/random.js';
import type { TlsFileOptions } from '../security/tls-files.js';
import { MAX_CLUSTER_ID_BYTES, clusterIdBytes } from './handshake.js';
import { DEFAULT_MAX_FRAME_BYTES, MIN_FRAME_LENGTH } from './wire-frame.js';

import type { PeerAddress } from '../runtime/interfaces.js';

export type { PeerAddress };

export interface TcpTransportOptions {
  /** This node's id: an integer in [1, 2^32 - 1], unique in the cluster. */
  readonly nodeId: number;
  /** Names the cluster; connections from another cluster are refused. At most 128 bytes of UTF-8. */
  readonly clusterId: string;
  /** Where to listen; port 0 picks a free port (see `address()`). */
  readonly listen: PeerAddress;
  /**
   * The local IP address outgoing connections are bound to (default: the system chooses). Giving
   * each node its own address lets a firewall tell node-to-node traffic apart from clients', e.g.
   * to cut one pair of nodes in a test network namespace.
   */
  readonly localAddress?: string;
  /**
   * Every node this one talks to, by id. It may include this node, which is ignored. The node with
   * the lower id of a pair dials the other, so only higher ids' addresses are ever used; the others
   * must be listed so that their connections are accepted.
   */
  readonly peers: ReadonlyMap<number, PeerAddress> | Readonly<Record<string, PeerAddress>>;
  /** Paxos groups per node; frames for a group index at or above it are dropped. */
  readonly groupCount: number;
  /** The largest frame accepted or sent (its length field). Default 16 MiB. */
  readonly maxFrameBytes?: number;
  /** Messages queued per peer before the oldest are dropped. Default 10,000. */
  readonly maxQueueMessages?: number;
  /** Encoded bytes queued per peer before the oldest messages are dropped. Default 64 MiB. */
  readonly maxQueueBytes?: number;
  /** A queued message older than this when its turn to be written comes is dropped. Default 5,000. */
  readonly maxQueueAgeMs?: number;
  /**
   * Reconnection backoff: starts here, doubles per attempt up to the max, with jitter. It starts
   * over once a connection has stayed open for twice the max.
   */
  readonly reconnectMinMs?: number;
  readonly reconnectMaxMs?: number;
  /** A connection not authenticated this long after it began (TCP connect included) is closed. */
  readonly handshakeTimeoutMs?: number;
  /**
   * A frame not complete this long after its first byte arrived closes its connection, however
   * slowly its bytes keep coming. Default 30,000.
   */
  readonly stallTimeoutMs?: number;
  /**
   * Mutual TLS between nodes (default: plain TCP). Every connection must present a certificate that
   * chains to `ca` and names, as a SAN URI `multipaxos:node:<id>`, the node id it claims in the
   * handshake (the dialer checks the same of the node it meant to reach). The files are reloaded
   * when they change (see TlsFiles); a CA change closes connections whose peer no longer verifies.
   */
  readonly tls?: TlsFileOptions;
  readonly logger?: Logger;
  /** Jitter for reconnection delays. Default: seeded from the OS. */
  readonly random?: Random;
}

export interface ResolvedTransportOptions {
  readonly nodeId: number;
  readonly clusterId: string;
  readonly clusterIdBytes: Uint8Array;
  readonly listen: PeerAddress;
  readonly localAddress: string | undefined;
  /** Without this node itself. */
  readonly peers: ReadonlyMap<number, PeerAddress>;
  readonly groupCount: number;
  readonly maxFrameBytes: number;
  readonly maxQueueMessages: number;
  readonly maxQueueBytes: number;
  readonly maxQueueAgeMs: number;
  readonly reconnectMinMs: number;
  readonly reconnectMaxMs: number;
  readonly handshakeTimeoutMs: number;
  readonly stallTimeoutMs: number;
  readonly tls: TlsFileOptions | undefined;
  readonly logger: Logger;
  readonly random: Random;
}

export const TRANSPORT_DEFAULTS = Object.freeze({
  maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
  maxQueueMessages: 10_000,
  maxQueueBytes: 64 * 1024 * 1024,
  maxQueueAgeMs: 5_000,
  reconnectMinMs: 50,
  reconnectMaxMs: 2_000,
  handshakeTimeoutMs: 5_000,
  stallTimeoutMs: 30_000,
});

const MAX_NODE_ID = 0xffff_ffff;
/** A bound that keeps a frame inside one Buffer and its length inside the u32 field. */
const MAX_FRAME_BYTES_LIMIT = 1024 * 1024 * 1024;
const MAX_TIMER_MS = 0x7fff_ffff;

export function resolveTransportOptions(options: TcpTransportOptions): ResolvedTransportOptions {
  if (typeof options !== 'object' || options === null) bad('options', 'must be an object', options);
  const nodeId = checkNodeId('nodeId', options.nodeId);
  const clusterId = checkClusterId(options.clusterId);
  const maxFrameBytes = integer('maxFrameBytes', options.maxFrameBytes ?? TRANSPORT_DEFAULTS.maxFrameBytes,
    MIN_FRAME_LENGTH + 1024, MAX_FRAME_BYTES_LIMIT);
  const reconnectMinMs = integer('reconnectMinMs', options.reconnectMinMs ?? TRANSPORT_DEFAULTS.reconnectMinMs, 1,
    MAX_TIMER_MS);
  const reconnectMaxMs = integer('reconnectMaxMs', options.reconnectMaxMs ?? Math.max(reconnectMinMs,
    TRANSPORT_DEFAULTS.reconnectMaxMs), reconnectMinMs, MAX_TIMER_MS);
  return {
    nodeId,
    clusterId,
    clusterIdBytes: clusterIdBytes(clusterId),
    listen: checkAddress('listen', options.listen, 0),
    localAddress: checkLocalAddress(options.localAddress),
    peers: checkPeers(options.peers, nodeId),
    groupCount: integer('groupCount', options.groupCount, 1, MAX_NODE_ID),
    maxFrameBytes,
    maxQueueMessages: integer('maxQueueMessages', options.maxQueueMessages ?? TRANSPORT_DEFAULTS.maxQueueMessages, 1,
      100_000_000),
    maxQueueBytes: integer('maxQueueBytes', options.maxQueueBytes ?? TRANSPORT_DEFAULTS.maxQueueBytes, 1,
      Number.MAX_SAFE_INTEGER),
    maxQueueAgeMs: integer('maxQueueAgeMs', options.maxQueueAgeMs ?? TRANSPORT_DEFAULTS.maxQueueAgeMs, 1,
      Number.MAX_SAFE_INTEGER),
    reconnectMinMs,
    reconnectMaxMs,
    handshakeTimeoutMs: integer('handshakeTimeoutMs', options.handshakeTimeoutMs ??
      TRANSPORT_DEFAULTS.handshakeTimeoutMs, 1, MAX_TIMER_MS),
    stallTimeoutMs: integer('stallTimeoutMs', options.stallTimeoutMs ?? TRANSPORT_DEFAULTS.stallTimeoutMs, 1,
      MAX_TIMER_MS),
    tls: checkTls(options.tls),
    logger: checkLogger(options.logger),
    random: checkRandom(options.random),
  };
}

export function checkNodeId(field: string, value: unknown): number {
  return integer(field, value, 1, MAX_NODE_ID);
}

export function checkAddress(field: string, value: unknown, minPort: number): PeerAddress {
  if (typeof value !== 'object' || value === null) bad(field, 'must be an object {host, port}', value);
  const { host, port } = value as Record<string, unknown>;
  if (typeof host !== 'string' || host.length === 0) bad(`${field}.host`, 'must be a non-empty string', host);
  return { host, port: integer(`${field}.port`, port, minPort, 65_535) };
}

function checkLocalAddress(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || isIP(value) === 0) bad('localAddress', 'must be an IPv4 or IPv6 address', value);
  return value;
}

function checkClusterId(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) bad('clusterId', 'must be a non-empty string', value);
  const bytes = clusterIdBytes(value).length;
  if (bytes > MAX_CLUSTER_ID_BYTES) bad('clusterId', `must be at most ${MAX_CLUSTER_ID_BYTES} bytes of UTF-8`, bytes);
  return value;
}

function checkPeers(value: unknown, self: number): ReadonlyMap<number, PeerAddress> {
  if (typeof value !== 'object' || value === null) bad('peers', 'must be a Map or an object of node id to address', value);
  const entries: [unknown, unknown][] = value instanceof Map ? [...value.entries()]
    : Object.entries(value as Record<string, unknown>);
  const peers = new Map<number, PeerAddress>();
  for (const [key, address] of entries) {
    const nodeId = checkNodeId(`peers key ${String(key)}`, typeof key === 'string' ? Number(key) : key);
    const checked = checkAddress(`peers[${nodeId}]`, address, 1);
    if (nodeId !== self) peers.set(nodeId, checked);
  }
  return peers;
}

function checkTls(value: unknown): TlsFileOptions | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) bad('tls', 'must be an object {ca, cert, key}', value);
  const tls = value as Record<string, unknown>;
  for (const field of ['ca', 'cert', 'key']) {
    if (typeof tls[field] !== 'string' || tls[field] === '') bad(`tls.${field}`, 'must be a file path', tls[field]);
  }
  if (tls.reloadIntervalMs !== undefined) integer('tls.reloadIntervalMs', tls.reloadIntervalMs, 0, MAX_TIMER_MS);
  return value as TlsFileOptions;
}

function checkLogger(value: unknown): Logger {
  if (value === undefined) return SILENT_LOGGER;
  const logger = value as Partial<Logger> | null;
  if (logger === null || typeof logger.info !== 'function' || typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function') {
    bad('logger', 'must have info, warn and error methods', value);
  }
  return logger as Logger;
}

function checkRandom(value: unknown): Random {
  if (value === undefined) return new SeededRandom(randomInt(0, 0xffff_ffff));
  const random = value as Partial<Random> | null;
  if (random === null || typeof random.int !== 'function' || typeof random.float !== 'function') {
    bad('random', 'must have int and float methods', value);
  }
  return random as Random;
}

function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    bad(field, `must be an integer in [${min}, ${max}]`, value);
  }
  return value;
}

function bad(field: string, rule: string, value: unknown): never {
  throw new PaxosError('BAD_OPTIONS', `TcpTransport option ${field} ${rule}; got ${describe(value)}`, NOT_CHOSEN);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
}
