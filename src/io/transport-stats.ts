/**
 * The counters of a TcpTransport: plain numbers an operator can export or assert on. Every way a
 * connection or a frame can be refused has its own counter, so a misbehaving peer or a network
 * that corrupts data shows up in metrics rather than only in logs.
 */
export class TransportCounters {
  /** Frames written (handshakes included) and frames received whose CRC checked out. */
  framesSent = 0;
  framesReceived = 0;
  bytesSent = 0;
  bytesReceived = 0;
  /** socket.write calls: every message queued for a peer in one event-loop turn shares one. */
  writes = 0;
  /** Paxos messages handed to the handler, from peers and from this node itself. */
  messagesDelivered = 0;
  /** Application frames queued for peers, and received from them and handed to the application's handler. */
  applicationFramesSent = 0;
  applicationFramesReceived = 0;
  /** Application frames received with no handler registered (dropped). */
  applicationFramesUnhandled = 0;
  /**
   * Application frames still queued when their connection closed or was replaced, dropped: they were
   * meant for that connection's process (a forwarded request its asker has since failed).
   */
  applicationFramesDropped = 0;

  connectionsAccepted = 0;
  /** Outgoing connections that reached the peer (TCP connected). */
  connectionsDialed = 0;
  /** Dials that failed before the TCP connection was made. */
  connectFailures = 0;
  /** Dials made again after a connection failed or closed. */
  reconnects = 0;
  /** Authenticated connections replaced by a newer one from the same peer (the peer restarted). */
  connectionsReplaced = 0;
  handshakesCompleted = 0;
  /** Refused, timed-out and evicted handshakes, and frames other than the handshake before it. */
  handshakesFailed = 0;
  /**
   * Unauthenticated connections closed to make room for a newer one: more than MAX_PENDING_HANDSHAKES
   * in all, or MAX_PENDING_PER_ADDRESS from one address, were waiting for their handshake.
   */
  handshakesEvicted = 0;
  /** TLS only: TLS handshakes that failed (no certificate, another CA, expired, bad protocol), either side. */
  tlsHandshakesFailed = 0;
  /**
   * TLS only: peers whose verified certificate does not name the node id they claim in the handshake
   * (or, dialing, the node this side meant to reach): a node posing as another. Also in handshakesFailed.
   */
  certificateMismatches = 0;
  /** TLS only: open connections closed because the peer's certificate expired or the CA was rotated away from it. */
  certificatesRevoked = 0;
  /** TLS only: reloads of changed certificate files. */
  tlsReloads = 0;

  crcErrors = 0;
  oversizedFrames = 0;
  /** Lengths below the minimum, unknown control frames, bodies that do not decode. */
  malformedFrames = 0;
  badVersion = 0;
  /** Paxos frames of a kind this version does not know (dropped; the connection stays). */
  unknownKinds = 0;
  /** Frames for a group index at or above groupCount (dropped). */
  badGroup = 0;
  /** Messages whose `from` is not the authenticated peer (dropped). */
  spoofedSender = 0;
  /** Messages for a group whose identity (gid) the peer announced differently: another cluster (dropped). */
  foreignGroupIdentity = 0;
  /** Connections closed because a frame was not complete stallTimeoutMs after its first byte. */
  stalledConnections = 0;
  /** Connections the peer closed in the middle of a frame. */
  truncatedFrames = 0;

  /** Oldest messages dropped from a full outbound queue (or a message larger than the queue). */
  droppedQueueFull = 0;
  /** Queued messages older than maxQueueAgeMs when their turn to be written came. */
  droppedStale = 0;
  /**
   * Messages that could not be encoded: not a message this version knows, or changed after `send`
   * so that it no longer encodes to the size it was queued with (say, its value's buffer was
   * transferred). Messages are encoded when written, so callers must not change them after sending.
   */
  droppedUnencodable = 0;
  /** Messages whose frame would exceed maxFrameBytes (the peer would refuse it). */
  droppedOversized = 0;
  /** Messages to a node that is not a peer, and queues dropped when a peer was removed. */
  droppedUnknownPeer = 0;
  /** Sends with a group index outside [0, groupCount). */
  droppedBadGroup = 0;
  /** Messages that arrived before a handler was registered. */
  droppedNoHandler = 0;
  /** Errors thrown by the message handler (caught and logged; delivery goes on). */
  handlerErrors = 0;
}

export type TransportCounterName = {
  [K in keyof TransportCounters]: TransportCounters[K] extends number ? K : never
}[keyof TransportCounters];

export interface PeerStats {
  readonly nodeId: number;
  /** An authenticated connection is open. */
  readonly connected: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
}

export type TransportStats = Readonly<Record<TransportCounterName, number>> & {
  /** Bytes held for incomplete inbound frames, over all connections. */
  readonly receiveBufferBytes: number;
  readonly openConnections: number;
  /** Accepted connections waiting for their handshake (at most MAX_PENDING_HANDSHAKES). */
  readonly pendingHandshakes: number;
  readonly peers: readonly PeerStats[];
};
