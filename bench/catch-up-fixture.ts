/**
 * A large gap for the catch-up benchmark without minutes of consensus: the logs of the nodes that
 * stay up are extended directly, through the real FileLogStore, with the chosen records a cluster
 * would have written, identical on every node (same ballot, same values, the checksum chain
 * continued from each log's last chosen record, as GroupContext.chainChecksum computes it). The
 * node that catches up still learns every one of them through the protocol, over TCP.
 *
 * Each value is shaped like a real proposal of `catch-up-child.ts`: the proposal identity envelope
 * around a value framed for the counting state machine (id 1), `VALUE_BYTES` of payload.
 */
import { compareBallots, type Ballot } from '../src/core/ballot.js';
import { chainStep } from '../src/core/group-context.js';
import { wrapProposal } from '../src/core/proposal-identity.js';
import type { AcceptorRecord } from '../src/core/ready.js';
import { fullCrc32 } from '../src/io/crc32.js';
import { FileLogStore } from '../src/io/file-log-store.js';
import { frameValue } from '../src/runtime/value-frame.js';

/** Records per put: large writes, few of them. */
const RECORDS_PER_PUT = 4_096;
const COUNTER_STATE_MACHINE_ID = 1;

export interface LogEnd {
  /** The first instance the log does not hold. */
  readonly nextInstanceId: number;
  /** The checksum chain through nextInstanceId - 1. */
  readonly checksum: number;
  /** The newest record's promise: appended records must not promise less. */
  readonly promised: Ballot;
}

/** Where a node's log of group 0 ends (it must end with a chosen record). */
export async function readLogEnd(dataDir: string): Promise<LogEnd> {
  const store = await FileLogStore.open({ directory: dataDir });
  try {
    const max = await store.maxInstanceId(0);
    if (max === undefined) throw new Error(`${dataDir}: the log is empty`);
    const newest = await store.get(0, max);
    if (newest === undefined || newest.accepted.proposalId === 0 || newest.checksum === 0) {
      throw new Error(`${dataDir}: the newest record (${max}) holds no chosen value with a known checksum`);
    }
    return { nextInstanceId: max + 1, checksum: newest.checksum, promised: newest.promised };
  } finally {
    await store.close();
  }
}

/** The ballot the appended values are "chosen" at: at least every given node's promise. */
export function fixtureBallot(ends: readonly LogEnd[]): Ballot {
  let highest = ends[0]?.promised as Ballot;
  for (const end of ends) if (compareBallots(end.promised, highest) > 0) highest = end.promised;
  return highest;
}

/** The value of instance `instanceId`: a proposal of a made-up life of node 1, numbered by instance. */
export function fixtureValue(instanceId: number, payloadBytes: number): Uint8Array {
  const payload = new Uint8Array(payloadBytes).fill(0x78);
  const identity = { nodeId: 1, incarnation: { high: 0xc47c, low: 0x0b00 }, startPromise: 0, sequence: instanceId + 1 };
  return wrapProposal(identity, frameValue(COUNTER_STATE_MACHINE_ID, payload));
}

/**
 * Append `count` chosen instances after `end` to the log in `dataDir`, durably. Returns the
 * checksum chain through the last one (equal on every node given the same `end`).
 */
export async function appendChosen(
  dataDir: string, end: LogEnd, ballot: Ballot, count: number, payloadBytes: number,
): Promise<number> {
  const store = await FileLogStore.open({ directory: dataDir });
  try {
    let checksum = end.checksum;
    let instanceId = end.nextInstanceId;
    const last = end.nextInstanceId + count;
    while (instanceId < last) {
      const records: AcceptorRecord[] = [];
      for (; instanceId < last && records.length < RECORDS_PER_PUT; instanceId++) {
        const value = fixtureValue(instanceId, payloadBytes);
        checksum = chainStep(fullCrc32, checksum, value);
        records.push({ instanceId, promised: ballot, accepted: ballot, value, checksum });
      }
      await store.put(0, records, { sync: instanceId >= last });
    }
    return checksum;
  } finally {
    await store.close();
  }
}
