// Helpers for TcpTransport tests on 127.0.0.1: nodes that record what they receive, a logger that
// records its lines, a raw socket that speaks (or mangles) the wire protocol, and bounded waits.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { PaxosMessage } from '../../src/core/messages.js';
import { encodeHandshake } from '../../src/io/handshake.js';
import { TcpTransport } from '../../src/io/tcp-transport.js';
import type { PeerAddress, TcpTransportOptions } from '../../src/io/tcp-transport-options.js';
import type { TransportStats } from '../../src/io/transport-stats.js';
import {
  FRAME_KIND_HANDSHAKE, FRAME_KIND_HANDSHAKE_ACK, FrameDecoder, encodeFrame, type DecodedFrame,
} from '../../src/io/wire-frame.js';
import { utf8 } from '../../src/util/bytes.js';
import { SeededRandom } from '../../src/util/random.js';
import { RecordingLogger } from './file-store-fixtures.js';

export { RecordingLogger, type LogLine } from './file-store-fixtures.js';

export const CLUSTER = 'transport-test';
export const LOCALHOST = '127.0.0.1';
/** An address for peers this node never dials (they have lower ids); nothing listens there. */
export const UNUSED_ADDRESS: PeerAddress = { host: LOCALHOST, port: 1 };

export interface Received {
  readonly group: number;
  readonly message: PaxosMessage;
}

export class TestNode {
  readonly received: Received[] = [];
  readonly logger: RecordingLogger;
  readonly transport: TcpTransport;
  /** Called (inside the transport's delivery) after each message is recorded. */
  onReceive: ((group: number, message: PaxosMessage) => void) | null = null;

  constructor(transport: TcpTransport, logger: RecordingLogger) {
    this.transport = transport;
    this.logger = logger;
    transport.onMessage((group, message) => {
      this.received.push({ group, message });
      this.onReceive?.(group, message);
    });
  }

  get id(): number {
    return this.transport.nodeId;
  }

  get address(): PeerAddress {
    return this.transport.address();
  }

  stats(): TransportStats {
    return this.transport.stats();
  }

  connectedTo(nodeId: number): boolean {
    return this.stats().peers.find((peer) => peer.nodeId === nodeId)?.connected ?? false;
  }

  from(nodeId: number): Received[] {
    return this.received.filter((entry) => entry.message.from === nodeId);
  }
}

export async function startNode(nodeId: number, peers: Record<number, PeerAddress>,
  overrides: Partial<TcpTransportOptions> = {}): Promise<TestNode> {
  const logger = new RecordingLogger();
  const transport = await TcpTransport.start({
    nodeId, clusterId: CLUSTER, listen: { host: LOCALHOST, port: 0 }, peers, groupCount: 4,
    reconnectMinMs: 10, reconnectMaxMs: 100, random: new SeededRandom(nodeId), logger, ...overrides,
  });
  return new TestNode(transport, logger);
}

/** Nodes with the given ids, every one told every other's address, all connected. */
export async function startCluster(ids: readonly number[], overrides: Partial<TcpTransportOptions> = {}):
  Promise<TestNode[]> {
  const placeholders = Object.fromEntries(ids.map((id) => [id, UNUSED_ADDRESS]));
  const nodes: TestNode[] = [];
  for (const id of ids) nodes.push(await startNode(id, placeholders, overrides));
  for (const node of nodes) {
    for (const other of nodes) if (other !== node) node.transport.setPeerAddress(other.id, other.address);
  }
  await waitFor(() => nodes.every((node) => nodes.every((other) => other === node || node.connectedTo(other.id))),
    'every pair connected');
  return nodes;
}

export async function closeAll(nodes: readonly (TestNode | undefined)[]): Promise<void> {
  await Promise.all(nodes.map((node) => node?.transport.close()));
}

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(5);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function ask(from: number, instanceId: number): PaxosMessage {
  return { kind: 'askForLearn', from, instanceId };
}

export { freePort } from '../../src/testing/free-port.js';

export function handshakeFrame(nodeId: number, targetNodeId: number, clusterId = CLUSTER, kind = FRAME_KIND_HANDSHAKE):
  Buffer {
  return encodeFrame(kind, 0, encodeHandshake({ nodeId, targetNodeId, clusterId: utf8(clusterId) }));
}

/** A hand-driven client socket: writes whatever bytes a test wants and records the frames it gets. */
export class RawPeer {
  readonly socket: Socket;
  readonly frames: DecodedFrame[] = [];
  private readonly decoder = new FrameDecoder(1 << 20);
  private ended = false;
  private readonly closedPromise: Promise<void>;

  /** Called with each frame received, after it is recorded. */
  onFrame: ((frame: DecodedFrame) => void) | null = null;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      try {
        for (let frame = this.decoder.next(); frame !== undefined; frame = this.decoder.next()) {
          const copy = { kind: frame.kind, group: frame.group, body: Buffer.from(frame.body) };
          this.frames.push(copy);
          this.onFrame?.(copy);
        }
      } catch {
        socket.destroy();
      }
    });
    this.closedPromise = new Promise((resolve) => socket.once('close', () => {
      this.ended = true;
      resolve();
    }));
  }

  /** Connect to 127.0.0.1:`port`, from `localAddress` (any 127.x.y.z on Linux) if given. */
  static async connect(port: number, localAddress?: string): Promise<RawPeer> {
    const socket = connect({ host: LOCALHOST, port, ...(localAddress === undefined ? {} : { localAddress }) });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new RawPeer(socket);
  }

  get closed(): boolean {
    return this.ended;
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Handshake as `nodeId` and wait for the acknowledgement. */
  async handshake(nodeId: number, targetNodeId: number): Promise<void> {
    this.write(handshakeFrame(nodeId, targetNodeId));
    await waitFor(() => this.frames.some((frame) => frame.kind === 1) || this.ended, 'handshake acknowledgement');
    assert.ok(!this.ended, 'the handshake was refused');
  }

  async waitClosed(timeoutMs = 3_000): Promise<void> {
    await waitFor(() => this.ended, 'the transport closes the raw connection', timeoutMs);
    await this.closedPromise;
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/**
 * A raw server playing node `nodeId` for the dialer `dialerId`: it answers each handshake with an
 * acknowledgement (unless `acknowledge` is false: the dial then hangs in its handshake) and records
 * every connection, whose frames a test reads and whose socket it writes anything to.
 */
export class FakePeer {
  readonly connections: RawPeer[] = [];
  private readonly server: Server;
  private listeningPort = 0;

  private constructor(nodeId: number, dialerId: number, acknowledge: boolean) {
    this.server = createServer((socket) => {
      const peer = new RawPeer(socket);
      this.connections.push(peer);
      peer.onFrame = (frame) => {
        if (frame.kind === FRAME_KIND_HANDSHAKE && acknowledge) {
          peer.write(handshakeFrame(nodeId, dialerId, CLUSTER, FRAME_KIND_HANDSHAKE_ACK));
        }
      };
    });
  }

  static async listen(nodeId: number, dialerId: number, acknowledge = true): Promise<FakePeer> {
    const fake = new FakePeer(nodeId, dialerId, acknowledge);
    await new Promise<void>((resolve) => fake.server.listen(0, LOCALHOST, resolve));
    const address = fake.server.address();
    assert.ok(address !== null && typeof address === 'object');
    fake.listeningPort = address.port;
    return fake;
  }

  get address(): PeerAddress {
    return { host: LOCALHOST, port: this.listeningPort };
  }

  async close(): Promise<void> {
    for (const connection of this.connections) connection.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
