/**
 * The production Transport: Paxos messages between nodes over TCP.
 *
 * - One connection per pair of nodes, used both ways. The node with the lower id dials, the higher
 *   only accepts, so two nodes never race to open two connections. The dialer sends a handshake
 *   (cluster id, its id, the id it means to reach; the version is in every frame header); the
 *   acceptor checks it and answers with an acknowledgement the dialer checks in turn (handshake.ts).
 *   Nothing but the handshake is accepted before that, and frames stay below 256 bytes until then,
 *   so an unauthenticated connection costs almost no memory. At most MAX_PENDING_HANDSHAKES accepted
 *   connections wait for their handshake, at most MAX_PENDING_PER_ADDRESS of them from one address;
 *   beyond either bound the oldest waiting one is closed, so a flood of idle connections cannot lock
 *   out a real peer (each still has handshakeTimeoutMs). Under TLS the same bounds apply first to
 *   raw connections still in their TLS handshake. A new connection from a peer that already
 *   has one replaces it: the peer restarted, or the old connection is half-open. Replacements that
 *   keep coming (two processes with the same node id) are logged as an error.
 * - Sending never blocks or throws. Messages wait in a bounded per-peer queue (the oldest are
 *   dropped when it is full: Paxos tolerates loss); those queued in one event-loop turn go out
 *   as one buffer in one socket.write, flushed by one setImmediate for all peers. A socket that
 *   asks for 'drain' gets nothing more until it drains. Messages that waited longer than
 *   maxQueueAgeMs when their turn comes are dropped (a peer back from an outage needs the current
 *   protocol state, not seconds-old prepares). Messages are encoded when they are written, not when
 *   they are sent (that is what lets a turn's messages share one buffer), so a caller must not
 *   change a message or its value after `send` (the core never does); a message that can no longer
 *   be encoded as sized (say, its value's buffer was transferred) is dropped, counted
 *   (droppedUnencodable) and logged, and the others go out. A queue is only ever written to a
 *   connection that can still carry it: when this side closes a peer's connection it forgets it at
 *   once, so what is sent meanwhile waits for the next connection.
 * - Messages to this node itself skip the network: they are delivered in a microtask, never
 *   dropped, in order.
 * - Application frames (application-frame.ts): an embedding application's opaque bytes to a peer
 *   (`sendApplication`), queued with that peer's messages (same batching) and sent only
 *   while the connection is open; they never push a Paxos message out of the queue (refused
 *   instead) and take at most a quarter of its bounds; the receiver's `onApplication` handler gets them with the
 *   authenticated peer's id.
 * - Inbound bytes are untrusted. A frame that fails its CRC, its length or version bounds, does not
 *   decode, or is not a handshake before authentication closes the connection. Three
 *   cases drop only the frame and keep the connection: a message kind this version does not know
 *   (a newer peer may add optional kinds), a group index at or above groupCount (a peer configured
 *   with more groups), and a sender id other than the authenticated peer's. Each case has a counter
 *   and a rate-limited log line. A frame that is not complete stallTimeoutMs after its first byte
 *   arrived closes the connection (however slowly its bytes keep coming), and memory per connection
 *   stays below maxFrameBytes.
 * - A failed or closed dial is retried with exponential backoff and jitter; never after close(). The
 *   backoff is reset only by a connection that stayed open for STABLE_CONNECTION_FACTOR ×
 *   reconnectMaxMs, so connections that keep being closed soon after their handshake (two processes
 *   dialing with the same node id, each replacing the other's) back off instead of ping-ponging.
 *
 * - Mutual TLS (option `tls`, docs/security.md): the listener is a TLS server that requires a
 *   certificate chaining to the cluster CA, and the dialer verifies the listener's the same way.
 *   After the TLS handshake, and before the transport handshake is answered (or, dialing, sent),
 *   the peer's certificate must name the node id it claims (acceptHandshake) or the node this side
 *   dialed (onConnected), as a SAN URI multipaxos:node:<id>: a node with a valid certificate cannot
 *   pose as another. Certificate files are reloaded when they change (TlsFiles); a changed CA closes
 *   the connections whose peer it no longer trusts, and a peer whose certificate expires while
 *   connected is disconnected (checkDeadlines).
 *
 * One interval timer per transport checks handshake deadlines and stalls; each peer has at most one
 * reconnect timer.
 */
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { connect as connectTls, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { PaxosMessage } from '../core/messages.js';
import { NOT_CHOSEN, PaxosError } from '../errors.js';
import type { Transport } from '../runtime/interfaces.js';
import { certificateNames } from '../security/node-identity.js';
import { stillTrusted, TlsFiles, type TlsReload } from '../security/tls-files.js';
import { assert } from '../util/assert.js';
import {
  decodeHandshake, encodeHandshake, refuseHandshake, refuseHandshakeAck, type Handshake, type LocalIdentity,
} from './handshake.js';
import { decodeGroupIdentity, encodeGroupIdentity, FRAME_KIND_GROUP_IDENTITY } from './group-identity.js';
import { ApplicationPayload, applicationFrameBytes, FRAME_KIND_APPLICATION, writeApplicationFrame } from './application-frame.js';
import { LogLimiter } from './log-limiter.js';
import { FIRST_MESSAGE_KIND_CODE, decodeMessage } from './message-codec.js';
import { OutboundQueue } from './outbound-queue.js';
import { PeerConnection, monotonicNow, type ConnectionOwner, type ConnectionState } from './peer-connection.js';
import {
  checkAddress, checkNodeId, resolveTransportOptions, type PeerAddress, type ResolvedTransportOptions,
  type TcpTransportOptions,
} from './tcp-transport-options.js';
import { TransportCounters, type PeerStats, type TransportStats } from './transport-stats.js';
import { isWireError } from './wire-error.js';
import {
  FRAME_KIND_HANDSHAKE, FRAME_KIND_HANDSHAKE_ACK, encodeFrame, messageFrameBytes, viewOf,
  writeMessageFrame, type DecodedFrame,
} from './wire-frame.js';

/** One socket.write carries at most this much (or one frame, if larger): bounds the copy per write. */
const WRITE_BATCH_BYTES = 4 * 1024 * 1024;
/** Connections accepted but not yet authenticated; beyond it the oldest is closed (connection floods). */
export const MAX_PENDING_HANDSHAKES = 256;
/** The same, per remote address: one host cannot take every slot. */
export const MAX_PENDING_PER_ADDRESS = 8;
/**
 * A connection resets its peer's backoff once it stayed open this many times reconnectMaxMs. More
 * than once: a rival dialer with the same node id waits up to reconnectMaxMs before replacing a
 * connection again, so a connection that merely survived one such wait proves nothing.
 */
const STABLE_CONNECTION_FACTOR = 2;
/** Replacements of one peer's connection within REPLACEMENT_WINDOW_MS that are logged as an error. */
const REPLACEMENT_ALARM = 5;
const REPLACEMENT_WINDOW_MS = 60_000;

type MessageHandler = (groupIndex: number, message: PaxosMessage) => void;
/** `body` is a view into the receive buffer: valid only until the handler returns. */
type ApplicationHandler = (from: number, body: Uint8Array) => void;

interface Peer {
  readonly nodeId: number;
  address: PeerAddress;
  readonly queue: OutboundQueue;
  /** The authenticated connection, if any. */
  connection: PeerConnection | null;
  /** A dial in progress (only when this node dials the peer). */
  pending: PeerConnection | null;
  /** Reconnects since the last connection that stayed open long enough: drives the backoff. */
  attempt: number;
  reconnectTimer: NodeJS.Timeout | null;
  /** Listed for this turn's flush. */
  flushQueued: boolean;
  /** Replacements of this peer's accepted connection since `replacedSince` (monotonic ms). */
  replacedCount: number;
  replacedSince: number;
}

export class TcpTransport implements Transport {
  private readonly options: ResolvedTransportOptions;
  private readonly identity: LocalIdentity;
  private readonly counters = new TransportCounters();
  private readonly log: LogLimiter;
  private readonly server: Server;
  /** Mutual TLS: the certificate files (reloaded when they change), or null for plain TCP. */
  private readonly tls: TlsFiles | null;
  private readonly peers = new Map<number, Peer>();
  /** Every socket not yet closed, in any state. */
  private readonly connections = new Set<PeerConnection>();
  /**
   * Accepted connections waiting for their handshake, oldest first: all of them (with the remote
   * address each was accepted from: a closed socket may no longer tell), and by remote address.
   */
  private readonly unauthenticated = new Map<PeerConnection, string>();
  private readonly unauthenticatedByAddress = new Map<string, Set<PeerConnection>>();
  /**
   * Under TLS, raw connections whose TLS handshake is under way (they reach onAccept only once it
   * is done), oldest first, by "address:port": bounded like the protocol handshakes, so that a
   * flood of connections that never finish TLS cannot hold sockets until handshakeTimeoutMs.
   */
  private readonly tlsHandshaking = new Map<string, Socket>();
  private readonly tlsHandshakingByAddress = new Map<string, Set<string>>();
  private handler: MessageHandler | null = null;
  private applicationHandler: ApplicationHandler | null = null;
  private readonly owner: ConnectionOwner;
  private flushList: Peer[] = [];
  private flushScheduled = false;
  private readonly flushAllBound = (): void => this.flushAll();
  /** Each group's identity (gid) as this node knows it, and as each connection's peer announced it. */
  private readonly groupIdentities = new Map<number, number>();
  private readonly peerGroupIdentities = new WeakMap<PeerConnection, Map<number, number>>();
  private selfGroups: number[] = [];
  private selfMessages: PaxosMessage[] = [];
  private selfScheduled = false;
  private readonly deliverSelfBound = (): void => this.deliverSelf();
  private housekeeping: NodeJS.Timeout | null = null;
  private boundAddress: PeerAddress | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;

  private constructor(options: ResolvedTransportOptions) {
    this.options = options;
    this.identity = { nodeId: options.nodeId, clusterId: options.clusterIdBytes };
    this.log = new LogLimiter(options.logger);
    for (const [nodeId, address] of options.peers) this.peers.set(nodeId, this.newPeer(nodeId, address));
    this.owner = {
      connected: (connection) => this.onConnected(connection),
      frame: (connection, frame) => this.onFrame(connection, frame),
      frameError: (connection, error) => this.onFrameError(connection, error),
      drained: (connection) => this.onDrained(connection),
      closed: (connection, previous, partial) => this.onClosed(connection, previous, partial),
    };
    this.tls = options.tls === undefined ? null : openTlsFiles(options);
    this.server = this.tls === null ? createServer((socket) => this.onAccept(socket))
      : this.createSecureServer(this.tls);
    this.server.on('error', (error) => {
      this.log.error('server-error', 'transport listener error', { error: error.message });
    });
  }

  /**
   * A TLS listener that asks for a client certificate and refuses any that does not chain to the CA
   * (or is expired) before a byte of the protocol is read; which node the certificate names is
   * checked against the handshake (acceptHandshake).
   */
  private createSecureServer(tls: TlsFiles): TlsServer {
    const { ca, cert, key } = tls.current;
    const server = createTlsServer({
      ca, cert, key, minVersion: 'TLSv1.2', requestCert: true, rejectUnauthorized: true,
      handshakeTimeout: this.options.handshakeTimeoutMs,
    }, (socket) => {
      this.forgetTlsHandshake(`${socket.remoteAddress ?? '?'}:${String(socket.remotePort)}`);
      this.onAccept(socket, true);
    });
    server.on('connection', (socket: Socket) => this.onTlsConnection(socket));
    server.on('tlsClientError', (error, socket) => {
      this.counters.tlsHandshakesFailed++;
      if (this.closed) return;
      this.log.warn('tls-handshake-failed', 'transport refused a TLS connection', {
        remote: remoteOf(socket), error: (error as NodeJS.ErrnoException).code ?? error.message,
        tlsHandshakesFailed: this.counters.tlsHandshakesFailed,
      });
    });
    tls.onReload((reload) => this.onTlsReload(reload));
    return server;
  }

  /**
   * New certificate files: new connections (accepted and dialed) use them. When the CA changed,
   * every connection whose peer's certificate does not verify against the new CA is closed (its
   * peer, if it has a certificate of the new CA, reconnects), and TLS handshakes in progress under
   * the old CA are abandoned.
   */
  private onTlsReload({ material, caChanged }: TlsReload): void {
    this.counters.tlsReloads++;
    (this.server as TlsServer).setSecureContext({ ca: material.ca, cert: material.cert, key: material.key,
      minVersion: 'TLSv1.2' });
    if (!caChanged || this.closed) return;
    for (const connection of [...this.connections]) {
      if (connection.state === 'closed') continue;
      if (connection.state === 'connecting') {
        connection.close('the CA changed during the TLS handshake');
        continue;
      }
      const certificate = connection.peerCertificate ?? connection.certificate();
      if (certificate !== undefined && stillTrusted(certificate, material)) continue;
      this.counters.certificatesRevoked++;
      this.refuse(connection, 'certificate-revoked', 'its certificate does not verify against the rotated CA');
    }
  }

  /** Validate the options, listen, and start dialing the peers with higher ids. */
  static async start(options: TcpTransportOptions): Promise<TcpTransport> {
    const transport = new TcpTransport(resolveTransportOptions(options));
    await transport.listen();
    transport.begin();
    return transport;
  }

  /** The address actually listened on (the real port when the options said 0). */
  address(): PeerAddress {
    assert(this.boundAddress !== null, 'TcpTransport.address() after start');
    return this.boundAddress;
  }

  get nodeId(): number {
    return this.options.nodeId;
  }

  onMessage(handler: MessageHandler): void {
    this.handler = handler;
  }

  /** Register the single receiver of application frames (see sendApplication). */
  onApplication(handler: ApplicationHandler): void {
    this.applicationHandler = handler;
  }

  /**
   * The hosts bytes to node `to` travel between: its configured address and the remote address of
   * its open connection (none without one). An application decides from them whether a secret may
   * go to it without TLS.
   */
  peerHosts(to: number): string[] {
    const peer = this.peers.get(to);
    if (peer === undefined || peer.connection === null || !peer.connection.isOpen) return [];
    return [peer.address.host, peer.connection.socket.remoteAddress ?? ''];
  }

  /** A token of the open connection to node `to` (undefined without one), for the application to compare. */
  connectionOf(to: number): object | undefined {
    const connection = this.peers.get(to)?.connection;
    return connection !== null && connection !== undefined && connection.isOpen ? connection.token : undefined;
  }

  /** Whether every peer was authenticated by a certificate naming its node id (mutual TLS). */
  get certifiedPeers(): boolean {
    return this.tls !== null;
  }

  /**
   * Queue an application frame for node `to`, with its Paxos messages. Only while an authenticated
   * connection to it is open (false otherwise, and for this node itself or a frame above
   * maxFrameBytes: the caller takes another way). Like a message, it can still be lost (queue
   * overflow, age, a connection that breaks): the application bounds its wait itself. `body` must
   * not change after this call.
   */
  sendApplication(to: number, body: Uint8Array): boolean {
    if (this.closed) return false;
    const peer = this.peers.get(to);
    if (peer === undefined || peer.connection === null || !peer.connection.isOpen) return false;
    const size = applicationFrameBytes(body);
    if (size - 4 > this.options.maxFrameBytes) return false;
    // Never at the Paxos messages' expense: no room left (or the application's share spent) is a refusal.
    if (!peer.queue.pushApplication(new ApplicationPayload(body), size, monotonicNow())) return false;
    this.counters.applicationFramesSent++;
    this.scheduleFlush(peer);
    return true;
  }

  /**
   * Queue `message` for node `to` (never blocks, never throws). The message is encoded when it is
   * written, later in this turn or after a reconnection: neither it nor its value may be changed
   * after this call.
   */
  send(groupIndex: number, to: number, message: PaxosMessage): void {
    if (this.closed) return;
    if (!(groupIndex >= 0 && groupIndex < this.options.groupCount && Number.isInteger(groupIndex))) {
      this.counters.droppedBadGroup++;
      return;
    }
    if (to === this.options.nodeId) {
      this.selfGroups.push(groupIndex);
      this.selfMessages.push(message);
      if (!this.selfScheduled) {
        this.selfScheduled = true;
        queueMicrotask(this.deliverSelfBound);
      }
      return;
    }
    const peer = this.peers.get(to);
    if (peer === undefined) {
      this.counters.droppedUnknownPeer++;
      return;
    }
    const size = frameSizeOf(message);
    if (size < 0) {
      this.counters.droppedUnencodable++;
      this.logUnencodable(to, message, 'it is not a message this version can encode');
      return;
    }
    if (size - 4 > this.options.maxFrameBytes) {
      this.counters.droppedOversized++;
      this.log.warn('send-oversized', 'transport dropped a message larger than maxFrameBytes',
        { to, kind: message.kind, frameBytes: size, maxFrameBytes: this.options.maxFrameBytes });
      return;
    }
    const dropped = peer.queue.push(groupIndex, message, size, monotonicNow());
    if (dropped !== 0) this.onQueueOverflow(peer, dropped);
    this.scheduleFlush(peer);
  }

  /**
   * Set, change or (with undefined) remove a peer's address. A new or changed address of a peer this
   * node dials is dialed at once; a removed peer's connection and queue are dropped and its
   * handshakes refused from then on.
   */
  setPeerAddress(nodeId: number, address: PeerAddress | undefined): void {
    checkNodeId('nodeId', nodeId);
    if (nodeId === this.options.nodeId) return;
    const peer = this.peers.get(nodeId);
    if (address === undefined) {
      if (peer !== undefined) this.removePeer(peer);
      return;
    }
    const checked = checkAddress('address', address, 1);
    if (peer === undefined) {
      const added = this.newPeer(nodeId, checked);
      this.peers.set(nodeId, added);
      if (!this.closed && this.boundAddress !== null) this.dial(added);
      return;
    }
    if (peer.address.host === checked.host && peer.address.port === checked.port) return;
    peer.address = checked;
    if (!this.dials(peer)) return;
    this.detach(peer, 'the peer address changed');
    peer.attempt = 0;
    if (!this.closed) this.dial(peer);
  }

  /**
   * The identity (gid) of a group is known: announce it to every connected peer (and to every peer
   * that connects later). Messages for the group from a peer that announced another are dropped.
   */
  setGroupIdentity(groupIndex: number, gid: number): void {
    if (this.closed || !Number.isSafeInteger(gid) || gid <= 0 || this.groupIdentities.get(groupIndex) === gid) return;
    this.groupIdentities.set(groupIndex, gid);
    for (const connection of this.connections) {
      if (connection.authenticated) this.announceIdentity(connection, groupIndex, gid);
    }
  }

  /**
   * Write what is queued for every peer now instead of at the end of the turn: the log store calls
   * it before it blocks the loop on a durable write, so messages that do not wait for that write
   * (another group's accepts, say) do not wait behind it either.
   */
  flushNow(): void {
    if (this.flushScheduled && !this.closed) this.flushAll();
  }

  stats(): TransportStats {
    const peers: PeerStats[] = [];
    for (const peer of this.peers.values()) {
      peers.push({
        nodeId: peer.nodeId, connected: peer.connection?.isOpen ?? false,
        queuedMessages: peer.queue.length, queuedBytes: peer.queue.byteLength,
      });
    }
    let receiveBufferBytes = 0;
    for (const connection of this.connections) {
      receiveBufferBytes += Math.max(connection.decoder.allocatedBytes, connection.decoder.bufferedBytes);
    }
    return {
      ...this.counters, receiveBufferBytes, openConnections: this.connections.size,
      pendingHandshakes: this.unauthenticated.size, peers,
    };
  }

  /** Close every connection and the listener and stop every timer; resolves once all are closed. */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    if (this.housekeeping !== null) clearInterval(this.housekeeping);
    this.housekeeping = null;
    for (const peer of this.peers.values()) this.cancelReconnect(peer);
    this.tls?.close();
    const waits: Promise<void>[] = [];
    for (const connection of this.connections) {
      connection.close('the transport is closing');
      waits.push(connection.closedPromise);
    }
    waits.push(new Promise((resolve) => {
      this.server.close(() => resolve());
    }));
    this.selfGroups = [];
    this.selfMessages = [];
    this.closing = Promise.all(waits).then(() => undefined);
    return this.closing;
  }

  private async listen(): Promise<void> {
    const { host, port } = this.options.listen;
    await new Promise<void>((resolve, reject) => {
      const fail = (error: Error): void => reject(new PaxosError('STARTUP_FAILED',
        `the transport cannot listen on ${host}:${port}: ${error.message}`, { ...NOT_CHOSEN, cause: error }));
      this.server.once('error', fail);
      this.server.listen(port, host, () => {
        this.server.off('error', fail);
        resolve();
      });
    });
    const bound = this.server.address();
    assert(bound !== null && typeof bound === 'object', 'a TCP listener has an address');
    this.boundAddress = { host: bound.address, port: bound.port };
  }

  private begin(): void {
    const { handshakeTimeoutMs, stallTimeoutMs } = this.options;
    const period = Math.max(5, Math.min(1000, Math.floor(Math.min(handshakeTimeoutMs, stallTimeoutMs) / 4)));
    this.housekeeping = setInterval(() => this.checkDeadlines(), period);
    this.housekeeping.unref();
    for (const peer of this.peers.values()) this.dial(peer);
  }

  private newPeer(nodeId: number, address: PeerAddress): Peer {
    return {
      nodeId, address, queue: new OutboundQueue(this.options.maxQueueMessages, this.options.maxQueueBytes),
      connection: null, pending: null, attempt: 0, reconnectTimer: null, flushQueued: false, replacedCount: 0,
      replacedSince: 0,
    };
  }

  /** This node dials the peers with higher ids. */
  private dials(peer: Peer): boolean {
    return peer.nodeId > this.options.nodeId;
  }

  // Outbound.

  private scheduleFlush(peer: Peer): void {
    const connection = peer.connection;
    if (peer.flushQueued || connection === null || !connection.isOpen || connection.blocked ||
      peer.queue.length === 0) return;
    peer.flushQueued = true;
    this.flushList.push(peer);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAllBound);
    }
  }

  private flushAll(): void {
    const peers = this.flushList;
    this.flushList = [];
    this.flushScheduled = false;
    for (const peer of peers) {
      peer.flushQueued = false;
      if (!this.closed) this.flushPeer(peer);
    }
  }

  /**
   * Write the peer's queue in buffers of up to WRITE_BATCH_BYTES until it is empty, the socket pushes
   * back, or the connection can no longer carry it. Runs in setImmediate and 'drain' callbacks, so it
   * never throws: a message that cannot be encoded is dropped by `encodeBatch`, and anything else
   * (a bug) is logged and leaves the rest of the queue for the next flush.
   */
  private flushPeer(peer: Peer): void {
    try {
      this.writeQueue(peer);
    } catch (error) {
      this.log.error('flush-bug', 'transport failed to flush a peer queue', {
        peer: peer.nodeId, error: error instanceof Error ? error.stack ?? error.message : String(error),
      });
    }
  }

  private writeQueue(peer: Peer): void {
    const connection = peer.connection;
    if (connection === null || !connection.isOpen || connection.blocked) return;
    const queue = peer.queue;
    if (queue.length === 0) return;
    const stale = queue.dropQueuedBefore(monotonicNow() - this.options.maxQueueAgeMs);
    if (stale > 0) this.counters.droppedStale += stale;
    while (queue.length > 0 && connection.isOpen && !connection.blocked) {
      const batch = this.encodeBatch(peer);
      // Messages leave the queue only once the socket took their bytes.
      if (batch.frames > 0 && connection.write(batch.buffer, batch.frames) === 'refused') return;
      for (let i = 0; i < batch.count; i++) queue.shift();
      if (batch.unencodable > 0) this.counters.droppedUnencodable += batch.unencodable;
    }
  }

  /**
   * Encode the oldest queued messages, up to WRITE_BATCH_BYTES (at least one), into one buffer
   * without removing them from the queue. A message whose encoding throws or differs from the size
   * computed at `send` (it was changed after it was sent) is left out of the buffer, logged, and
   * counted in `unencodable`; it still counts in `count`, the messages the batch consumed.
   */
  private encodeBatch(peer: Peer): { buffer: Buffer; frames: number; count: number; unencodable: number } {
    const queue = peer.queue;
    let count = 0;
    let bytes = 0;
    while (count < queue.length) {
      const size = queue.sizeAt(count);
      if (count > 0 && bytes + size > WRITE_BATCH_BYTES) break;
      bytes += size;
      count++;
    }
    const buffer = Buffer.allocUnsafe(bytes);
    const view = viewOf(buffer);
    let offset = 0;
    let unencodable = 0;
    for (let i = 0; i < count; i++) {
      const message = queue.messageAt(i);
      const size = queue.sizeAt(i);
      let end = -1;
      let problem = '';
      try {
        end = message instanceof ApplicationPayload ? writeApplicationFrame(buffer, view, offset, message)
          : writeMessageFrame(buffer, view, offset, queue.groupAt(i), message);
        if (end - offset !== size) problem = `it encodes to ${end - offset} bytes where ${size} were queued`;
      } catch (error) {
        problem = error instanceof Error ? error.message : String(error);
      }
      if (problem === '') {
        offset = end;
        continue;
      }
      // Leave its bytes out: the next frame is written where this one began.
      unencodable++;
      this.logUnencodable(peer.nodeId, message as PaxosMessage, `it changed after it was sent: ${problem}`);
    }
    // Every byte written must be a whole frame: the buffer is uninitialized memory.
    return { buffer: buffer.subarray(0, offset), frames: count - unencodable, count, unencodable };
  }

  private logUnencodable(to: number, message: PaxosMessage, reason: string): void {
    this.log.error('send-unencodable', 'transport dropped a message it cannot encode', {
      to, kind: (message as { kind?: unknown }).kind, reason,
    });
  }

  private onQueueOverflow(peer: Peer, dropped: number): void {
    this.counters.droppedQueueFull += dropped < 0 ? 1 : dropped;
    this.log.warn('queue-full', 'transport queue full: dropped the oldest messages', {
      peer: peer.nodeId, connected: peer.connection !== null, queuedMessages: peer.queue.length,
      queuedBytes: peer.queue.byteLength, droppedQueueFull: this.counters.droppedQueueFull,
    });
  }

  private deliverSelf(): void {
    const groups = this.selfGroups;
    const messages = this.selfMessages;
    this.selfGroups = [];
    this.selfMessages = [];
    this.selfScheduled = false;
    for (let i = 0; i < messages.length && !this.closed; i++) {
      this.deliver(groups[i] as number, messages[i] as PaxosMessage);
    }
  }

  private deliver(groupIndex: number, message: PaxosMessage): void {
    const handler = this.handler;
    if (handler === null) {
      this.counters.droppedNoHandler++;
      return;
    }
    this.counters.messagesDelivered++;
    try {
      handler(groupIndex, message);
    } catch (error) {
      this.counters.handlerErrors++;
      this.log.error('handler-error', 'the transport message handler threw', {
        groupIndex, kind: message.kind, from: message.from,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }

  // Connections.

  private dial(peer: Peer): void {
    if (this.closed || !this.dials(peer) || peer.connection !== null || peer.pending !== null ||
      peer.reconnectTimer !== null || this.peers.get(peer.nodeId) !== peer) return;
    const { host, port } = peer.address;
    const { localAddress } = this.options;
    const bind = localAddress === undefined ? {} : { localAddress };
    // Over TLS the chain (and expiry) is verified by the TLS handshake; the host name is not, the
    // node id the certificate names is (onConnected): a node is who it is, wherever it listens.
    const socket = this.tls === null ? createConnection({ host, port, ...bind })
      : connectTls({
        host, port, ...bind, secureContext: this.tls.current.context, checkServerIdentity: () => undefined,
      });
    const connection = new PeerConnection(this.owner, this.counters, socket, 'dialer', peer.nodeId,
      this.options.handshakeTimeoutMs, this.tls !== null);
    peer.pending = connection;
    this.connections.add(connection);
  }

  private scheduleReconnect(peer: Peer): void {
    if (this.closed || peer.reconnectTimer !== null || peer.pending !== null || peer.connection !== null ||
      this.peers.get(peer.nodeId) !== peer) return;
    const { reconnectMinMs, reconnectMaxMs, random } = this.options;
    const ceiling = Math.min(reconnectMaxMs, reconnectMinMs * 2 ** Math.min(peer.attempt, 30));
    // Equal jitter: half the delay is fixed, half random, so peers that failed together spread out.
    const delay = Math.floor(ceiling / 2) + random.int(0, Math.ceil(ceiling / 2) + 1);
    peer.attempt++;
    peer.reconnectTimer = setTimeout(() => {
      peer.reconnectTimer = null;
      this.counters.reconnects++;
      this.dial(peer);
    }, delay);
    peer.reconnectTimer.unref();
  }

  private cancelReconnect(peer: Peer): void {
    if (peer.reconnectTimer !== null) clearTimeout(peer.reconnectTimer);
    peer.reconnectTimer = null;
  }

  /** Forget the peer's connections (closing them) without scheduling a reconnect. */
  private detach(peer: Peer, reason: string): void {
    this.cancelReconnect(peer);
    const { connection, pending } = peer;
    peer.connection = null;
    peer.pending = null;
    connection?.close(reason);
    pending?.close(reason);
  }

  private removePeer(peer: Peer): void {
    this.peers.delete(peer.nodeId);
    this.detach(peer, 'the peer was removed');
    this.counters.droppedUnknownPeer += peer.queue.clear();
  }

  /**
   * Close a connection this side gave up on. Its socket is destroyed now but reports 'close' only in a
   * later phase of the event loop, so a peer's current connection is forgotten here, at once (and
   * redialed if this side dials): messages sent meanwhile stay queued for the next connection
   * instead of being written into a dead socket.
   */
  private closeConnection(connection: PeerConnection, reason: string): void {
    connection.close(reason);
    this.forgetUnauthenticated(connection);
    const peer = this.peers.get(connection.peerId);
    if (peer !== undefined && peer.connection === connection) this.lost(peer, connection);
  }

  /** The peer's current connection is gone, closed by either side. */
  private lost(peer: Peer, connection: PeerConnection): void {
    peer.connection = null;
    this.dropApplicationFrames(peer);
    const now = monotonicNow();
    if (connection.openedAt >= 0 &&
      now - connection.openedAt >= STABLE_CONNECTION_FACTOR * this.options.reconnectMaxMs) peer.attempt = 0;
    if (!this.closed) {
      this.log.info(`peer-down:${peer.nodeId}`, 'transport lost its connection to a peer', {
        peer: peer.nodeId, reason: connection.closeReason ?? connection.socketError?.message ?? 'closed by the peer',
        openMs: Math.round(now - connection.openedAt),
      });
    }
    if (this.dials(peer)) this.scheduleReconnect(peer);
  }

  private onAccept(socket: Socket, secure = false): void {
    if (this.closed) {
      socket.on('error', () => {});
      socket.destroy();
      return;
    }
    const address = socket.remoteAddress ?? '?';
    const fromAddress = this.unauthenticatedByAddress.get(address);
    if (fromAddress !== undefined && fromAddress.size >= MAX_PENDING_PER_ADDRESS) {
      this.evictUnauthenticated(first(fromAddress), `${MAX_PENDING_PER_ADDRESS} from its address`);
    } else if (this.unauthenticated.size >= MAX_PENDING_HANDSHAKES) {
      this.evictUnauthenticated(first(this.unauthenticated.keys()), `${MAX_PENDING_HANDSHAKES} in all`);
    }
    this.counters.connectionsAccepted++;
    const connection = new PeerConnection(this.owner, this.counters, socket, 'acceptor', 0,
      this.options.handshakeTimeoutMs, secure);
    this.connections.add(connection);
    this.unauthenticated.set(connection, address);
    // Looked up again: the eviction may have emptied (and so removed) this address's set.
    const sameAddress = this.unauthenticatedByAddress.get(address);
    if (sameAddress === undefined) this.unauthenticatedByAddress.set(address, new Set([connection]));
    else sameAddress.add(connection);
  }

  /**
   * Whether the peer's certificate verifies against the CA loaded now. A TLS handshake under way
   * when the CA changes completes under the old one, after onTlsReload has checked the open
   * connections: without this a peer the new CA no longer trusts would get in.
   */
  private trustedNow(connection: PeerConnection): boolean {
    const certificate = connection.certificate();
    return this.tls !== null && certificate !== undefined && stillTrusted(certificate, this.tls.current);
  }

  /** A raw connection to the TLS listener, before its TLS handshake: bounded as in onAccept. */
  private onTlsConnection(socket: Socket): void {
    if (this.closed) return;
    const address = socket.remoteAddress ?? '?';
    const key = `${address}:${String(socket.remotePort)}`;
    const fromAddress = this.tlsHandshakingByAddress.get(address);
    if (fromAddress !== undefined && fromAddress.size >= MAX_PENDING_PER_ADDRESS) {
      this.evictTlsHandshake(first(fromAddress), `${MAX_PENDING_PER_ADDRESS} from its address`);
    } else if (this.tlsHandshaking.size >= MAX_PENDING_HANDSHAKES) {
      this.evictTlsHandshake(first(this.tlsHandshaking.keys()), `${MAX_PENDING_HANDSHAKES} in all`);
    }
    this.tlsHandshaking.set(key, socket);
    const sameAddress = this.tlsHandshakingByAddress.get(address);
    if (sameAddress === undefined) this.tlsHandshakingByAddress.set(address, new Set([key]));
    else sameAddress.add(key);
    socket.once('close', () => {
      if (this.tlsHandshaking.get(key) === socket) this.forgetTlsHandshake(key);
    });
  }

  private evictTlsHandshake(key: string | undefined, bound: string): void {
    const socket = key === undefined ? undefined : this.tlsHandshaking.get(key);
    if (key === undefined || socket === undefined) return;
    this.forgetTlsHandshake(key);
    this.counters.handshakesEvicted++;
    this.log.warn('handshake-flood', 'transport closed its oldest connection still in its TLS handshake: too many '
      + 'in progress', { remote: key, bound, pending: this.tlsHandshaking.size,
      handshakesEvicted: this.counters.handshakesEvicted });
    socket.destroy();
  }

  private forgetTlsHandshake(key: string): void {
    if (!this.tlsHandshaking.delete(key)) return;
    const address = key.slice(0, key.lastIndexOf(':'));
    const sameAddress = this.tlsHandshakingByAddress.get(address);
    sameAddress?.delete(key);
    if (sameAddress?.size === 0) this.tlsHandshakingByAddress.delete(address);
  }

  /**
   * Too many accepted connections wait for their handshake: close the oldest. Refusing the newest
   * instead would let a flood of idle connections lock out every real peer for as long as it lasts.
   */
  private evictUnauthenticated(connection: PeerConnection | undefined, bound: string): void {
    if (connection === undefined) return;
    this.counters.handshakesFailed++;
    this.counters.handshakesEvicted++;
    this.log.warn('handshake-flood', 'transport closed its oldest unauthenticated connection: too many handshakes '
      + 'in progress', { remote: remoteOf(connection.socket), bound, pending: this.unauthenticated.size,
      handshakesEvicted: this.counters.handshakesEvicted });
    this.closeConnection(connection, `evicted: more than ${bound} handshakes in progress`);
  }

  /** The connection no longer waits for its handshake (authenticated, refused, or closed). */
  private forgetUnauthenticated(connection: PeerConnection): void {
    const address = this.unauthenticated.get(connection);
    if (address === undefined) return;
    this.unauthenticated.delete(connection);
    const sameAddress = this.unauthenticatedByAddress.get(address);
    if (sameAddress === undefined) return;
    sameAddress.delete(connection);
    if (sameAddress.size === 0) this.unauthenticatedByAddress.delete(address);
  }

  private onConnected(connection: PeerConnection): void {
    this.counters.connectionsDialed++;
    if (connection.secure && !certificateNames(connection.certificate(), connection.peerId)) {
      this.counters.certificateMismatches++;
      this.failHandshake(connection, `the certificate of the node listening there does not name node ${connection.peerId}`);
      return;
    }
    if (connection.secure && !this.trustedNow(connection)) {
      this.counters.certificatesRevoked++;
      this.failHandshake(connection, 'the certificate of the node listening there does not verify against the '
        + 'current CA (it changed during the TLS handshake)');
      return;
    }
    const body = encodeHandshake({ nodeId: this.options.nodeId, targetNodeId: connection.peerId,
      clusterId: this.options.clusterIdBytes });
    connection.write(encodeFrame(FRAME_KIND_HANDSHAKE, 0, body), 1);
  }

  private onDrained(connection: PeerConnection): void {
    const peer = this.peers.get(connection.peerId);
    if (peer !== undefined && peer.connection === connection && !this.closed) this.flushPeer(peer);
  }

  private onClosed(connection: PeerConnection, previous: ConnectionState, partialFrame: boolean): void {
    this.connections.delete(connection);
    this.forgetUnauthenticated(connection);
    if (partialFrame && connection.closeReason === null) this.counters.truncatedFrames++;
    const peer = this.peers.get(connection.peerId);
    if (peer === undefined) return;
    if (peer.pending === connection) {
      peer.pending = null;
      if (previous === 'connecting') {
        this.counters.connectFailures++;
        if (connection.secure && connection.tcpConnected) this.counters.tlsHandshakesFailed++;
        this.log.warn(`connect-failed:${peer.nodeId}`, 'transport cannot connect to a peer', {
          peer: peer.nodeId, host: peer.address.host, port: peer.address.port, attempt: peer.attempt,
          error: connection.socketError?.message ?? connection.closeReason ?? 'closed',
        });
      }
      if (this.dials(peer)) this.scheduleReconnect(peer);
    }
    // Still current only when the peer or the network closed it; this side forgets its own at once.
    if (peer.connection === connection) this.lost(peer, connection);
  }

  // Inbound frames.

  private onFrame(connection: PeerConnection, frame: DecodedFrame): void {
    if (!connection.authenticated) {
      if (connection.role === 'acceptor') this.acceptHandshake(connection, frame);
      else this.acceptHandshakeAck(connection, frame);
      return;
    }
    if (frame.kind === FRAME_KIND_GROUP_IDENTITY) {
      this.onGroupIdentity(connection, frame);
      return;
    }
    if (frame.kind === FRAME_KIND_APPLICATION) {
      // Its group field is always 0: anything else is malformed, dropped alone like a frame for a
      // group out of range (the connection's other frames are sound).
      if (frame.group !== 0) {
        this.counters.malformedFrames++;
        return;
      }
      this.deliverApplication(connection.peerId, frame.body);
      return;
    }
    if (frame.kind < FIRST_MESSAGE_KIND_CODE) {
      this.counters.malformedFrames++;
      this.refuse(connection, 'malformed-frame', `connection frame kind ${frame.kind} after the handshake`);
      return;
    }
    if (frame.group >= this.options.groupCount) {
      this.counters.badGroup++;
      this.log.warn('bad-group', 'transport dropped a frame for a group it does not have', {
        peer: connection.peerId, group: frame.group, groupCount: this.options.groupCount,
      });
      return;
    }
    let message: PaxosMessage;
    try {
      message = decodeMessage(frame.kind, frame.body);
    } catch (error) {
      if (isWireError(error) && error.reason === 'unknown-kind') {
        this.counters.unknownKinds++;
        this.log.warn('unknown-kind', 'transport dropped a message of an unknown kind',
          { peer: connection.peerId, kind: frame.kind });
        return;
      }
      this.counters.malformedFrames++;
      this.refuse(connection, 'malformed-frame', error instanceof Error ? error.message : String(error));
      return;
    }
    const local = this.groupIdentities.get(frame.group);
    const remote = this.peerGroupIdentities.get(connection)?.get(frame.group);
    if (local !== undefined && remote !== undefined && local !== remote) {
      this.counters.foreignGroupIdentity++;
      this.log.warn(`foreign-group:${connection.peerId}:${frame.group}`, 'transport dropped a message from ' +
        'another cluster: the peer announced another identity for this group', {
        peer: connection.peerId, group: frame.group, gid: local, peerGid: remote,
      });
      return;
    }
    if (message.from !== connection.peerId) {
      this.counters.spoofedSender++;
      this.log.warn('spoofed-sender', 'transport dropped a message whose sender is not the connected peer',
        { peer: connection.peerId, claimedFrom: message.from, kind: message.kind });
      return;
    }
    this.deliver(frame.group, message);
  }

  private deliverApplication(from: number, body: Uint8Array): void {
    const handler = this.applicationHandler;
    if (handler === null) {
      this.counters.applicationFramesUnhandled++;
      return;
    }
    this.counters.applicationFramesReceived++;
    try {
      handler(from, body);
    } catch (error) {
      this.counters.handlerErrors++;
      this.log.error('application-handler-error', 'the transport application handler threw', {
        from, error: error instanceof Error ? error.stack ?? error.message : String(error),
      });
    }
  }

  private acceptHandshake(connection: PeerConnection, frame: DecodedFrame): void {
    if (frame.kind !== FRAME_KIND_HANDSHAKE || frame.group !== 0) {
      this.failHandshake(connection, `frame kind ${frame.kind} before the handshake`);
      return;
    }
    let hello: Handshake;
    try {
      hello = decodeHandshake(frame.body);
    } catch (error) {
      this.failHandshake(connection, error instanceof Error ? error.message : String(error));
      return;
    }
    if (connection.secure && !certificateNames(connection.certificate(), hello.nodeId)) {
      this.counters.certificateMismatches++;
      this.failHandshake(connection, `its certificate does not name node ${hello.nodeId}, the node it claims to be`,
        hello.nodeId);
      return;
    }
    if (connection.secure && !this.trustedNow(connection)) {
      this.counters.certificatesRevoked++;
      this.failHandshake(connection, 'its certificate does not verify against the current CA (it changed during '
        + 'the TLS handshake)', hello.nodeId);
      return;
    }
    const refusal = refuseHandshake(this.identity, hello, (nodeId) => this.peers.has(nodeId));
    const peer = this.peers.get(hello.nodeId);
    if (refusal !== null || peer === undefined) {
      this.failHandshake(connection, refusal ?? 'unknown peer', hello.nodeId);
      return;
    }
    this.forgetUnauthenticated(connection);
    connection.open(hello.nodeId, this.options.maxFrameBytes);
    const ack = encodeHandshake({ nodeId: this.options.nodeId, targetNodeId: hello.nodeId,
      clusterId: this.options.clusterIdBytes });
    connection.write(encodeFrame(FRAME_KIND_HANDSHAKE_ACK, 0, ack), 1);
    const previous = peer.connection;
    peer.connection = connection;
    if (previous !== null) this.replaced(peer, previous);
    this.opened(peer, connection);
  }

  /**
   * Application frames are for the connection they were queued on: its asker fails them when that
   * connection goes (see kv/peer-forward.ts), so none may reach the peer later on another one.
   */
  private dropApplicationFrames(peer: Peer): void {
    this.counters.applicationFramesDropped += peer.queue.dropApplication();
  }

  /**
   * A peer's new connection replaced its old one. Once is a restart or a half-open connection; again
   * and again is two processes claiming the same node id, each replacing the other's connection.
   */
  private replaced(peer: Peer, previous: PeerConnection): void {
    this.counters.connectionsReplaced++;
    this.dropApplicationFrames(peer);
    previous.close('replaced by a newer connection from the same peer');
    const now = monotonicNow();
    if (peer.replacedCount === 0 || now - peer.replacedSince >= REPLACEMENT_WINDOW_MS) {
      peer.replacedSince = now;
      peer.replacedCount = 0;
    }
    peer.replacedCount++;
    if (peer.replacedCount >= REPLACEMENT_ALARM) {
      this.log.error(`replaced:${peer.nodeId}`, `connection from node ${peer.nodeId} replaced ${peer.replacedCount} `
        + 'times in a minute; two processes with the same node id?', {
        peer: peer.nodeId, replaced: peer.replacedCount, remote: remoteOf(peer.connection?.socket ?? previous.socket),
        connectionsReplaced: this.counters.connectionsReplaced,
      });
    }
  }

  private acceptHandshakeAck(connection: PeerConnection, frame: DecodedFrame): void {
    if (frame.kind !== FRAME_KIND_HANDSHAKE_ACK || frame.group !== 0) {
      this.failHandshake(connection, `frame kind ${frame.kind} before the handshake acknowledgement`);
      return;
    }
    let ack: Handshake;
    try {
      ack = decodeHandshake(frame.body);
    } catch (error) {
      this.failHandshake(connection, error instanceof Error ? error.message : String(error));
      return;
    }
    const refusal = refuseHandshakeAck(this.identity, connection.peerId, ack);
    if (refusal !== null) {
      this.failHandshake(connection, refusal, ack.nodeId);
      return;
    }
    const peer = this.peers.get(connection.peerId);
    if (peer === undefined || peer.pending !== connection) {
      connection.close('the dial is no longer wanted');
      return;
    }
    peer.pending = null;
    peer.connection = connection;
    // The backoff is not reset here but once the connection has lasted (see `lost`).
    connection.open(connection.peerId, this.options.maxFrameBytes);
    this.opened(peer, connection);
  }

  private opened(peer: Peer, connection: PeerConnection): void {
    this.counters.handshakesCompleted++;
    for (const [groupIndex, gid] of this.groupIdentities) this.announceIdentity(connection, groupIndex, gid);
    this.log.info(`peer-up:${peer.nodeId}`, 'transport connected to a peer', {
      peer: peer.nodeId, role: connection.role, remote: remoteOf(connection.socket),
    });
    this.scheduleFlush(peer);
  }

  private announceIdentity(connection: PeerConnection, groupIndex: number, gid: number): void {
    connection.write(encodeFrame(FRAME_KIND_GROUP_IDENTITY, groupIndex, encodeGroupIdentity(gid)), 1);
  }

  private onGroupIdentity(connection: PeerConnection, frame: DecodedFrame): void {
    if (frame.group >= this.options.groupCount) {
      this.counters.badGroup++;
      return;
    }
    let gid: number;
    try {
      gid = decodeGroupIdentity(frame.body);
    } catch (error) {
      this.counters.malformedFrames++;
      this.refuse(connection, 'malformed-frame', error instanceof Error ? error.message : String(error));
      return;
    }
    let known = this.peerGroupIdentities.get(connection);
    if (known === undefined) {
      known = new Map();
      this.peerGroupIdentities.set(connection, known);
    }
    known.set(frame.group, gid);
  }

  private failHandshake(connection: PeerConnection, reason: string, claimedNodeId?: number): void {
    this.counters.handshakesFailed++;
    this.refuse(connection, 'handshake-failed', reason, claimedNodeId);
  }

  /** The decoder refused the stream, or handling a frame threw (a bug: logged as an error too). */
  private onFrameError(connection: PeerConnection, error: unknown): void {
    if (!isWireError(error)) {
      this.log.error('frame-handling-bug', 'transport failed to handle a frame', {
        peer: connection.peerId, error: error instanceof Error ? error.stack ?? error.message : String(error),
      });
    }
    const reason = isWireError(error) ? error.reason : 'bug';
    switch (reason) {
      case 'bad-crc': this.counters.crcErrors++; break;
      case 'oversized': this.counters.oversizedFrames++; break;
      case 'bad-version': this.counters.badVersion++; break;
      default: this.counters.malformedFrames++; break;
    }
    this.refuse(connection, reason, error instanceof Error ? error.message : String(error));
  }

  /** Close a connection for something its peer sent, with one (rate-limited) log line. */
  private refuse(connection: PeerConnection, key: string, reason: string, claimedNodeId?: number): void {
    this.log.warn(key, 'transport closed a connection', {
      reason, peer: connection.peerId === 0 ? claimedNodeId : connection.peerId, role: connection.role,
      state: connection.state, remote: remoteOf(connection.socket),
    });
    this.closeConnection(connection, reason);
  }

  private checkDeadlines(): void {
    const now = monotonicNow();
    const wallClock = this.tls === null ? 0 : Date.now();
    for (const connection of this.connections) {
      if (connection.state === 'closed' || !connection.writable) continue;
      if (connection.certificateExpiresAt <= wallClock) {
        this.counters.certificatesRevoked++;
        this.refuse(connection, 'certificate-expired', 'the peer\'s certificate expired');
        continue;
      }
      if (!connection.authenticated && now >= connection.handshakeDeadline) {
        if (connection.state === 'connecting') {
          connection.close('connect timeout');
          continue;
        }
        this.failHandshake(connection, 'handshake timeout');
        continue;
      }
      // From the frame's first byte, not its latest one: a peer trickling a byte now and then must not
      // hold a frame's worth of memory for ever.
      const since = connection.decoder.partialSince;
      if (since >= 0 && now - since >= this.options.stallTimeoutMs) {
        this.counters.stalledConnections++;
        this.refuse(connection, 'stalled', `a frame did not complete within ${this.options.stallTimeoutMs} ms `
          + 'of its first byte');
      }
    }
  }
}

/**
 * The node's TLS files, checked at start-up: its own certificate must name its own node id and
 * chain to the CA, or every peer would refuse it with nothing on this side saying why.
 */
function openTlsFiles(options: ResolvedTransportOptions): TlsFiles {
  let files: TlsFiles;
  try {
    files = TlsFiles.open(options.tls as NonNullable<ResolvedTransportOptions['tls']>, options.logger);
  } catch (error) {
    throw new PaxosError('STARTUP_FAILED', `the transport cannot use its TLS files: ${(error as Error).message}`,
      { ...NOT_CHOSEN, cause: error });
  }
  const { certificate } = files.current;
  const problem = !certificateNames(certificate, options.nodeId)
    ? `does not name node ${options.nodeId} (its SAN URIs: ${certificate.subjectAltName ?? 'none'})`
    : !stillTrusted(certificate, files.current) ? 'does not chain to the CA file, or is not valid now' : undefined;
  if (problem !== undefined) {
    files.close();
    throw new PaxosError('STARTUP_FAILED', `this node's certificate ${options.tls?.cert ?? ''} ${problem}`, NOT_CHOSEN);
  }
  return files;
}

/** The bytes of the frame of `message`, or -1 when it cannot be encoded (not a message this version knows). */
function frameSizeOf(message: PaxosMessage): number {
  try {
    const size = messageFrameBytes(message);
    return Number.isSafeInteger(size) ? size : -1;
  } catch {
    return -1;
  }
}

function first<T>(items: Iterable<T>): T | undefined {
  for (const item of items) return item;
  return undefined;
}

function remoteOf(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}
