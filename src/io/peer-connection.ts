/**
 * One TCP connection of the transport: its socket, its frame decoder, where it stands in the
 * handshake, its deadlines, and write backpressure. It decides nothing about peers: every frame,
 * decoding failure, drain and close goes to its owner (the TcpTransport), which holds the policy.
 */
import type { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { performance } from 'node:perf_hooks';
import { HANDSHAKE_MAX_FRAME_BYTES } from './handshake.js';
import type { TransportCounters } from './transport-stats.js';
import { FrameDecoder, type DecodedFrame } from './wire-frame.js';

/** The lower node id dials; the higher accepts. */
export type ConnectionRole = 'dialer' | 'acceptor';

export type ConnectionState =
  /** A dial whose TCP connection is not made yet. */
  | 'connecting'
  /** Connected; frames other than the handshake are refused. */
  | 'handshaking'
  /** Authenticated: `peerId` is who is at the other end. */
  | 'open'
  | 'closed';

export interface ConnectionOwner {
  /** A dial's TCP connection is made. */
  connected(connection: PeerConnection): void;
  /** A frame whose CRC checked out. */
  frame(connection: PeerConnection, frame: DecodedFrame): void;
  /** The decoder refused the stream (its error is a WireError, or a bug). */
  frameError(connection: PeerConnection, error: unknown): void;
  /** The socket accepts writes again after backpressure. */
  drained(connection: PeerConnection): void;
  /**
   * The socket is fully closed. `previous` is the state it was in (a dial closed while 'connecting'
   * never reached the peer); `partialFrame` says whether a frame was cut short.
   */
  closed(connection: PeerConnection, previous: ConnectionState, partialFrame: boolean): void;
}

/** What became of a `PeerConnection.write`. */
export type WriteResult = 'written' | 'blocked' | 'refused';

export function monotonicNow(): number {
  return performance.now();
}

export class PeerConnection {
  /** Stands for this connection to the application (TcpTransport.connectionOf), and does nothing. */
  readonly token: object = Object.freeze({});
  readonly socket: Socket;
  readonly role: ConnectionRole;
  readonly decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES);
  /** The peer a dialer is meant to reach, or the peer an acceptor authenticated; 0 until known. */
  peerId: number;
  state: ConnectionState;
  /** When a connection still not open is closed (monotonic ms). */
  readonly handshakeDeadline: number;
  /** The latest time bytes arrived (monotonic ms). */
  lastDataAt: number;
  /** When the handshake completed (monotonic ms), or -1 before. */
  openedAt = -1;
  /** socket.write returned false: nothing more is written until 'drain'. */
  blocked = false;
  /** Why this side closed it, for the log line (null: the peer or the network closed it). */
  closeReason: string | null = null;
  /** The socket error that ended it, if one did. */
  socketError: Error | null = null;
  /** A dial over TLS whose TCP connection was made: a failure before 'connected' is the TLS handshake's. */
  tcpConnected = false;
  /** Over TLS: the peer's verified certificate, once the connection is open. */
  peerCertificate: X509Certificate | undefined = undefined;
  /** When the peer's certificate expires (epoch ms; Infinity over plain TCP). */
  certificateExpiresAt = Infinity;
  /** Resolves once the socket has closed. */
  readonly closedPromise: Promise<void>;
  private readonly owner: ConnectionOwner;
  private readonly counters: TransportCounters;

  /**
   * `secure`: the socket is a TLS socket; a dial is 'connected' once its TLS handshake (which
   * verifies the peer's certificate chain) is done, not when TCP connects.
   */
  constructor(owner: ConnectionOwner, counters: TransportCounters, socket: Socket, role: ConnectionRole, peerId: number,
    handshakeTimeoutMs: number, readonly secure = false) {
    this.owner = owner;
    this.counters = counters;
    this.socket = socket;
    this.role = role;
    this.peerId = peerId;
    this.state = role === 'dialer' ? 'connecting' : 'handshaking';
    const now = monotonicNow();
    this.handshakeDeadline = now + handshakeTimeoutMs;
    this.lastDataAt = now;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 10_000);
    this.closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        const partial = this.decoder.bufferedBytes > 0;
        const previous = this.state;
        this.state = 'closed';
        this.owner.closed(this, previous, partial);
        resolve();
      });
    });
    socket.on('error', (error) => {
      this.socketError ??= error;
    });
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('drain', () => {
      this.blocked = false;
      if (this.state !== 'closed') this.owner.drained(this);
    });
    if (role === 'dialer') {
      socket.once('connect', () => { this.tcpConnected = true; });
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        if (this.state !== 'connecting') return;
        this.state = 'handshaking';
        this.owner.connected(this);
      });
    }
  }

  /** The handshake completed (the socket may be closing since: see `isOpen`). */
  get authenticated(): boolean {
    return this.state === 'open';
  }

  /**
   * Authenticated and still able to carry messages. A socket this side destroyed, or one that ended,
   * stays in 'open' until its 'close' event (a later phase of the event loop): anything written to
   * it meanwhile would be lost, so it does not count as open.
   */
  get isOpen(): boolean {
    return this.state === 'open' && this.writable;
  }

  /** The socket takes writes: neither destroyed nor ended. */
  get writable(): boolean {
    return !this.socket.destroyed && this.socket.writable;
  }

  /** Over TLS, the peer's certificate (verified by the TLS handshake); undefined over plain TCP. */
  certificate(): X509Certificate | undefined {
    if (!this.secure) return undefined;
    // Kept from the first call: on Node 20 a dialing TLSSocket answers getPeerX509Certificate()
    // once, and undefined after (a connection's certificate never changes: no renegotiation).
    this.verifiedCertificate ??= (this.socket as TLSSocket).getPeerX509Certificate();
    return this.verifiedCertificate;
  }

  private verifiedCertificate: X509Certificate | undefined;

  /** Authenticated: from now on frames up to `maxFrameBytes` are accepted. */
  open(peerId: number, maxFrameBytes: number): void {
    this.peerId = peerId;
    this.peerCertificate = this.certificate();
    if (this.peerCertificate !== undefined) this.certificateExpiresAt = Date.parse(this.peerCertificate.validTo);
    this.state = 'open';
    this.openedAt = monotonicNow();
    this.decoder.maxFrameBytes = maxFrameBytes;
  }

  /**
   * Write one buffer of whole frames. 'written': the socket took it; 'blocked': the socket took it
   * (it is buffered) but wants a 'drain' before more; 'refused': the socket is destroyed or ended and
   * nothing was written, so the caller still owns what the buffer holds.
   */
  write(buffer: Buffer, frames: number): WriteResult {
    if (!this.writable) return 'refused';
    this.counters.writes++;
    this.counters.framesSent += frames;
    this.counters.bytesSent += buffer.length;
    if (this.socket.write(buffer) === true) return 'written';
    this.blocked = true;
    return 'blocked';
  }

  /** Close at once (queued writes are abandoned: Paxos tolerates the loss). */
  close(reason: string): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    this.closeReason ??= reason;
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    if (this.state === 'closed' || this.socket.destroyed) return;
    this.counters.bytesReceived += chunk.length;
    this.lastDataAt = monotonicNow();
    const decoder = this.decoder;
    decoder.push(chunk, this.lastDataAt);
    // One try around the loop, not one per frame. Besides the decoder's WireError, it catches a
    // bug in frame handling: that closes this connection instead of escaping a socket listener and
    // taking the process down.
    try {
      while (!this.socket.destroyed) {
        const frame = decoder.next();
        if (frame === undefined) return;
        this.counters.framesReceived++;
        this.owner.frame(this, frame);
      }
    } catch (error) {
      this.owner.frameError(this, error);
    }
  }
}
