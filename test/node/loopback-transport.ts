// A one-node PaxosNode's transport for tests that need no network.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { PaxosMessage, PeerAddress, Transport } from '../../src/index.js';

/** Delivers a node's messages to itself and records what the node tells it. */
export class LoopbackTransport implements Transport {
  readonly peers = new Map<number, PeerAddress>();
  readonly identities = new Map<number, number>();
  private handler: (groupIndex: number, message: PaxosMessage) => void = () => {};

  constructor(private readonly nodeId = 1) {}

  send(groupIndex: number, to: number, message: PaxosMessage): void {
    if (to === this.nodeId) setImmediate(() => this.handler(groupIndex, message));
  }

  onMessage(handler: (groupIndex: number, message: PaxosMessage) => void): void {
    this.handler = handler;
  }

  setPeerAddress(nodeId: number, address: PeerAddress): void {
    this.peers.set(nodeId, address);
  }

  setGroupIdentity(groupIndex: number, gid: number): void {
    this.identities.set(groupIndex, gid);
  }
}

/** Poll until `check` holds (5 s at most). */
export async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !check(); waited += 10) {
    if (waited > 5_000) assert.fail(`timed out waiting until ${what}`);
    await sleep(10);
  }
}
