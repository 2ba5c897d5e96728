/**
 * Forwarding a KV key request to its group's master over the nodes' own transport connection
 * (PaxosNode.applicationChannel) instead of a second HTTP hop: the request goes as one application
 * frame, batched with the Paxos messages going to that node, and the master's reply comes back the
 * same way. What the master does with it is exactly what it does with the HTTP request it replaces
 * (KvHttpServer.serveForwarded): it authenticates the caller's Authorization again, and believes a
 * certificate caller's role only from a peer the transport authenticated by its node certificate.
 *
 * This side keeps each request until its reply, its deadline or its caller's departure, whichever
 * comes first: a request id per request, one timer each, and at most MAX_PENDING at once. A peer is
 * used only once it has shown it speaks this protocol (a hello answered: an older node drops these
 * frames unread), and not while its connection is down: `forward` then answers undefined and the
 * caller forwards over HTTP instead. A request whose reply does not come in time answers TIMEOUT
 * (maybe applied, for a write: it was sent) and the peer goes back to unproven until it answers a
 * hello again, so a node that restarts as an older version is not waited on twice.
 *
 * Frames that do not decode, replies no request is waiting for and replies from another peer than
 * the one asked are dropped and counted; nothing a peer sends can throw past the handler. The
 * serving side bounds what one peer can make it hold (MAX_SERVING_PER_PEER requests at once, then
 * OVERLOADED), and keeps large replies off the connection: a read whose reply is above
 * MAX_REPLY_BODY_BYTES is answered "ask over HTTP", and the asker does.
 */
import type { ApplicationChannel } from '../node/node-transport.js';
import {
  decodeForwardFrame, encodeForwardReply, encodeForwardRequest, encodeForwardSignal, FORWARD_HELLO, FORWARD_HELLO_ACK,
  FORWARD_REPLY, FORWARD_REQUEST, FORWARD_RETRY_OVER_HTTP, type ForwardedRequest,
} from './peer-forward-codec.js';
import { KvError } from './kv-error.js';

/** Requests waiting for their reply at once; beyond it, requests go over HTTP. */
const MAX_PENDING = 16_384;
/** How often an unproven peer is asked whether it speaks this protocol. */
const HELLO_EVERY_MS = 1_000;
/** How often requests are checked for a connection to their master that went down. */
export const CONNECTION_CHECK_MS = 250;
/** The code of the cause of a request failed because its connection to the master went. */
export const PEER_CONNECTION_LOST = 'ERR_PEER_CONNECTION_LOST';
/** Requests served for one peer at once; beyond it, OVERLOADED (not applied). */
export const MAX_SERVING_PER_PEER = 4_096;
/**
 * A reply body above this goes over HTTP instead (a GET's asker is told to ask again that way):
 * large frames would crowd out the Paxos messages sharing the connection.
 */
export const MAX_REPLY_BODY_BYTES = 64 * 1024;

const OVERLOADED_BODY = Buffer.from('{"error":"OVERLOADED","message":"this node serves too many requests forwarded ' +
  'by that node","mayHaveBeenApplied":false}\n');
const UNSENDABLE_BODY = Buffer.from('{"error":"INTERNAL","message":"the reply could not be sent over the nodes\' ' +
  'connection","mayHaveBeenApplied":true}\n');

export interface PeerReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

/** What the master does with a forwarded request; never rejects (failures are replies). */
export type ForwardedRequestServer =
  (from: number, request: ForwardedRequest, certifiedPeer: boolean) => Promise<PeerReply>;

export interface PeerForwardCounters {
  sent: number;
  answered: number;
  timedOut: number;
  /** Frames that did not decode. */
  malformed: number;
  /** Replies for no waiting request, or from another peer than the one asked. */
  unexpected: number;
  /** Requests served for other nodes. */
  served: number;
  /** Replies the transport would not take (the connection went down): the asker times out. */
  unsent: number;
  /** Requests failed because the connection to their master went down before the reply. */
  connectionLost: number;
  /** Requests refused with OVERLOADED: too many served for their peer at once. */
  overloaded: number;
  /**
   * Replies that could not go as they were (too large for a frame, or refused by the connection's
   * queue): a small one went instead (a read's asker asks over HTTP; a write's fails, maybe applied).
   */
  replaced: number;
}

interface Pending {
  readonly to: number;
  readonly isWrite: boolean;
  /** Undefined: the master asks for the request to go over HTTP. */
  readonly resolve: (reply: PeerReply | undefined) => void;
  readonly reject: (error: KvError) => void;
  readonly timer: NodeJS.Timeout;
  readonly onAbort: (() => void) | undefined;
  readonly signal: AbortSignal | undefined;
  /** The connection it was sent on (ApplicationChannel.connectionOf). */
  readonly connection: object | undefined;
}

export type PeerForwardRequest = Omit<ForwardedRequest, 'id'> & {
  readonly isWrite: boolean;
  readonly signal?: AbortSignal;
};

export class PeerForwarder {
  readonly counters: PeerForwardCounters = {
    sent: 0, answered: 0, timedOut: 0, malformed: 0, unexpected: 0, served: 0, unsent: 0, connectionLost: 0,
    overloaded: 0, replaced: 0,
  };
  /** Runs while requests wait: fails those whose master's connection went down (see forward). */
  private connectionCheck: NodeJS.Timeout | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /**
   * Peers that answered a hello since their last timeout, with the connection they answered on: a
   * new connection may be to a restarted process (not yet serving these frames, or an older
   * version), which must answer a hello again before it is sent requests.
   */
  private readonly provenPeers = new Map<number, object>();
  private readonly helloSentAt = new Map<number, number>();
  private closed = false;
  /** Requests being served, by the peer that asked. */
  private readonly serving = new Map<number, number>();

  constructor(
    private readonly channel: ApplicationChannel,
    private readonly serve: ForwardedRequestServer,
    private readonly maxServingPerPeer = MAX_SERVING_PER_PEER,
  ) {
    channel.onReceive((from, body) => this.receive(from, body));
  }

  /**
   * Send `request` to node `to`; undefined (nothing sent) when that cannot be done now: the peer
   * has not shown it speaks this protocol, its connection is down, or too many requests wait.
   * Without a reply within `waitMs` it fails with TIMEOUT (`request.timeoutMs`, what the master
   * is given, should be a little less, so that its own answer comes first). It resolves undefined
   * when the master's reply to a read was too large for a frame: ask again over HTTP. When the
   * connection to the master goes down before the reply (its process died), it fails within
   * CONNECTION_CHECK_MS with UNAVAILABLE: maybe applied for a write (it may have been written before
   * the connection went), not for a read, whose caller may ask again (master-wait.ts), rather than
   * waiting out the deadline. A frame still queued then is dropped by the transport, not sent later.
   */
  forward(
    to: number, request: PeerForwardRequest, waitMs: number = request.timeoutMs,
  ): Promise<PeerReply | undefined> | undefined {
    if (this.closed) return undefined;
    if (!this.proven(to)) {
      this.provenPeers.delete(to);
      this.hello(to);
      return undefined;
    }
    if (this.pending.size >= MAX_PENDING) return undefined;
    const id = this.takeId();
    const { isWrite, signal, ...fields } = request;
    let frame: Buffer;
    try {
      frame = encodeForwardRequest({ ...fields, id });
    } catch {
      // A field too long for its length prefix: nothing was sent, HTTP carries it.
      return undefined;
    }
    const connection = this.channel.connectionOf(to);
    if (!this.channel.send(to, frame)) return undefined;
    this.counters.sent++;
    return new Promise<PeerReply | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.settle(id);
        this.counters.timedOut++;
        // Unproven until it answers a hello again (asked at the next request). Not for a read: a
        // plain read waits one short attempt for its master (master-wait.ts, READ_ATTEMPT_MS), and a
        // master merely slow to read must not lose the transport path for the writes sent to it.
        if (isWrite) {
          this.provenPeers.delete(to);
          this.helloSentAt.delete(to);
        }
        reject(new KvError('TIMEOUT', `the master (node ${to}) did not answer within ${Math.round(waitMs)} ms` +
          (isWrite ? '; the write may have been applied' : ''), { mayHaveBeenApplied: isWrite }));
      }, Math.max(1, waitMs));
      const onAbort = signal === undefined ? undefined : (): void => {
        this.settle(id);
        reject(new KvError('ABORTED', 'the client went away', { mayHaveBeenApplied: isWrite }));
      };
      if (onAbort !== undefined) signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { to, isWrite, resolve, reject, timer, onAbort, signal, connection });
      this.checkConnections();
    });
  }

  /** Whether `peer` has shown, on its current connection, that it speaks this protocol (requests go over it). */
  proven(peer: number): boolean {
    const connection = this.provenPeers.get(peer);
    return connection !== undefined && connection === this.channel.connectionOf(peer);
  }

  /** Every waiting request fails (UNAVAILABLE, maybe applied for writes: they were sent). */
  close(): void {
    this.closed = true;
    clearInterval(this.connectionCheck);
    this.connectionCheck = undefined;
    for (const id of [...this.pending.keys()]) {
      const waiting = this.settle(id);
      waiting?.reject(new KvError('UNAVAILABLE', 'the node is stopping'));
    }
  }

  private markProven(peer: number): void {
    const connection = this.channel.connectionOf(peer);
    if (connection === undefined) this.provenPeers.delete(peer);
    else this.provenPeers.set(peer, connection);
  }

  /** Keeps the connection check running while requests wait, and only then. */
  private checkConnections(): void {
    if (this.connectionCheck !== undefined) return;
    this.connectionCheck = setInterval(() => {
      if (this.pending.size === 0) {
        clearInterval(this.connectionCheck);
        this.connectionCheck = undefined;
        return;
      }
      for (const [id, waiting] of this.pending) {
        // Not the connection it was sent on any more: a master that died will not answer, and the
        // transport drops a frame still queued for that connection (it never reaches the next one).
        if (waiting.connection !== undefined && this.channel.connectionOf(waiting.to) === waiting.connection) continue;
        this.settle(id);
        this.counters.connectionLost++;
        const cause = Object.assign(new Error('the connection closed'), { code: PEER_CONNECTION_LOST });
        waiting.reject(new KvError('UNAVAILABLE', `the connection to the master (node ${waiting.to}) closed before ` +
          `its reply${waiting.isWrite ? '; the write may have been applied' : ''}`,
        { mayHaveBeenApplied: waiting.isWrite, cause }));
      }
    }, CONNECTION_CHECK_MS);
    this.connectionCheck.unref();
  }

  private hello(to: number): void {
    const now = performance.now();
    const last = this.helloSentAt.get(to);
    if (last !== undefined && now - last < HELLO_EVERY_MS) return;
    this.helloSentAt.set(to, now);
    this.channel.send(to, encodeForwardSignal(FORWARD_HELLO, 0));
  }

  private takeId(): number {
    // u32 ids, wrapping; a long-waiting request's id is skipped rather than reused.
    do {
      this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1;
    } while (this.pending.has(this.nextId));
    return this.nextId;
  }

  private settle(id: number): Pending | undefined {
    const waiting = this.pending.get(id);
    if (waiting === undefined) return undefined;
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    if (waiting.onAbort !== undefined) waiting.signal?.removeEventListener('abort', waiting.onAbort);
    return waiting;
  }

  private receive(from: number, body: Uint8Array): void {
    if (this.closed) return;
    let frame;
    try {
      frame = decodeForwardFrame(body);
    } catch {
      this.counters.malformed++;
      return;
    }
    switch (frame.type) {
      case FORWARD_REQUEST: {
        const { request } = frame;
        const serving = this.serving.get(from) ?? 0;
        if (serving >= this.maxServingPerPeer) {
          this.counters.overloaded++;
          this.reply(from, request, { status: 429, headers: {}, body: OVERLOADED_BODY });
          return;
        }
        this.serving.set(from, serving + 1);
        this.counters.served++;
        void this.serve(from, request, this.channel.certifiedPeers)
          .then((reply) => this.reply(from, request, reply))
          .catch(() => {
            // `serve` never rejects and `reply` does not throw; nothing here may end the process.
            this.counters.unsent++;
          })
          .finally(() => {
            // The slot is given back whatever happened, or a peer would lose it for good.
            const left = (this.serving.get(from) ?? 1) - 1;
            if (left === 0) this.serving.delete(from);
            else this.serving.set(from, left);
          });
        return;
      }
      case FORWARD_REPLY: {
        const waiting = this.pending.get(frame.reply.id);
        if (waiting === undefined || waiting.to !== from) {
          this.counters.unexpected++;
          return;
        }
        this.settle(frame.reply.id);
        this.counters.answered++;
        waiting.resolve(frame.reply);
        return;
      }
      case FORWARD_RETRY_OVER_HTTP: {
        const waiting = this.pending.get(frame.id);
        if (waiting === undefined || waiting.to !== from) {
          this.counters.unexpected++;
          return;
        }
        this.settle(frame.id);
        this.counters.answered++;
        // Only a read is asked again; a write was done and its reply is lost (masters never send this for one).
        if (!waiting.isWrite) waiting.resolve(undefined);
        else waiting.reject(new KvError('INTERNAL', `the master (node ${from}) could not send its reply`, { mayHaveBeenApplied: true }));
        return;
      }
      case FORWARD_HELLO:
        this.channel.send(from, encodeForwardSignal(FORWARD_HELLO_ACK, 0));
        // It speaks the protocol too: no need to ask it back.
        this.markProven(from);
        return;
      case FORWARD_HELLO_ACK:
        this.markProven(from);
        return;
    }
  }

  /**
   * The reply to `request`, or, when it is too large for a frame (or the connection will not take
   * it), a small one in its place: a read is told to ask again over HTTP, a write gets an error
   * saying it may have been applied. Only a connection that is down leaves the asker to time out.
   */
  private reply(to: number, request: ForwardedRequest, reply: PeerReply): void {
    if (this.closed) return;
    let bytes: Buffer | undefined;
    if (reply.body.length <= MAX_REPLY_BODY_BYTES) {
      try {
        bytes = encodeForwardReply({ id: request.id, ...reply });
      } catch {
        bytes = undefined;
      }
    }
    if (bytes !== undefined && this.channel.send(to, bytes)) return;
    this.counters.replaced++;
    const instead = request.method === 'GET' ? encodeForwardSignal(FORWARD_RETRY_OVER_HTTP, request.id)
      : encodeForwardReply({ id: request.id, status: 500, headers: {}, body: UNSENDABLE_BODY });
    if (!this.channel.send(to, instead)) this.counters.unsent++;
  }
}
