/**
 * The simulator's snapshot-capable state machine (runs with checkpoints on). Its state is the
 * number of values it executed and a CRC chain over them: two equal states prove the same values
 * executed in the same order. It echoes each payload back, as the plain echo machine does, so
 * callers still see their own entry's result.
 *
 * Snapshots are saved on the node's shelf (snapshot-shelf.ts), which survives crashes; the
 * checkpoint it reports advances only once a save is durable, so a crash can never leave the node
 * with a log cleaned above the state it restarts with. (The `reportBeforeDurable` canary breaks
 * exactly that.) A new process life starts from the newest durable snapshot, so start-up replays
 * only the tail of the log.
 */
import type { ExecuteInput, ReceivedSnapshot, StateMachine, StateMachineSnapshot } from '../../runtime/interfaces.js';
import { fullCrc32 } from '../crc32.js';
import type { MachineSnapshot } from './snapshot-shelf.js';

/** What a process life gives its snapshot-capable state machines. */
export interface SnapshotHost {
  /** The newest durable snapshot (undefined: none yet). */
  read(groupIndex: number, machineId: number): MachineSnapshot | undefined;
  /** Resolves once the snapshot is durable; never, if the process crashes first. */
  save(groupIndex: number, machineId: number, snapshot: MachineSnapshot, kind: 'snapshot' | 'install'): Promise<void>;
  /** Canary clean-before-checkpoint-durable: report a checkpoint as soon as its save begins. */
  readonly reportBeforeDurable: boolean;
  /** For the checkers: the state after each execution, and a state taken from a snapshot. */
  executed(groupIndex: number, machineId: number, instanceId: number, state: MachineSnapshot): void;
  restored(groupIndex: number, machineId: number, snapshot: MachineSnapshot, how: 'start' | 'install'): void;
}

const HEADER_BYTES = 16;

export class DigestStateMachine implements StateMachine {
  readonly id: number;
  private readonly groupIndex: number;
  private readonly host: SnapshotHost;
  private count = 0;
  private digest = 0;
  private lastInstanceId = -1;
  /** The newest durable snapshot, and the checkpoint reported (the same, but for the canary). */
  private durable: MachineSnapshot | undefined;
  private reported = -1;
  /** An install is under way: no snapshot is taken of a state being replaced. */
  installing = false;

  constructor(id: number, groupIndex: number, host: SnapshotHost) {
    this.id = id;
    this.groupIndex = groupIndex;
    this.host = host;
    const durable = host.read(groupIndex, id);
    if (durable !== undefined) {
      this.adopt(durable);
      host.restored(groupIndex, id, durable, 'start');
    }
  }

  /** The state now (every value executed so far). */
  get state(): MachineSnapshot {
    return { instanceId: this.lastInstanceId, count: this.count, digest: this.digest };
  }

  execute(input: ExecuteInput): unknown {
    if (input.instanceId <= this.reported) {
      throw new Error(`instance ${input.instanceId} executed at or below checkpoint ${this.reported}`);
    }
    this.count++;
    this.digest = fullCrc32(input.value, this.digest);
    this.lastInstanceId = input.instanceId;
    this.host.executed(this.groupIndex, this.id, input.instanceId, this.state);
    return Buffer.from(input.value).toString('latin1');
  }

  checkpointInstanceId(): number {
    return this.reported;
  }

  /**
   * Save the state as a snapshot at `instanceId`: the caller knows every instance up to it is
   * executed here (none is half way through a batch), so the state is the state at that instance.
   */
  async takeSnapshot(instanceId: number): Promise<void> {
    if (this.installing || instanceId <= (this.durable?.instanceId ?? -1)) return;
    // A batch whose entry failed is retried from that entry: the state may already hold the first
    // entries of the next instance, and is then not the state at `instanceId` (seed 207 found it).
    if (this.lastInstanceId > instanceId) return;
    const snapshot = { instanceId, count: this.count, digest: this.digest };
    if (this.host.reportBeforeDurable) this.reported = Math.max(this.reported, instanceId);
    await this.host.save(this.groupIndex, this.id, snapshot, 'snapshot');
    if (snapshot.instanceId > (this.durable?.instanceId ?? -1)) this.durable = snapshot;
    this.reported = Math.max(this.reported, snapshot.instanceId);
  }

  async openSnapshot(): Promise<StateMachineSnapshot | undefined> {
    const durable = this.durable;
    if (durable === undefined) return undefined;
    const bytes = encodeSnapshot(durable);
    // Several pieces, so the receiver reassembles a stream rather than one chunk.
    return {
      instanceId: durable.instanceId,
      chunks: (async function* pieces() {
        for (let offset = 0; offset < bytes.length; offset += 700) yield bytes.subarray(offset, offset + 700);
      })(),
    };
  }

  async installSnapshot(_groupIndex: number, received: ReceivedSnapshot): Promise<void> {
    const parts: Uint8Array[] = [];
    for await (const part of received.chunks) parts.push(part);
    const snapshot = decodeSnapshot(Buffer.concat(parts), received.instanceId);
    this.installing = true;
    try {
      // Durable first: the state is replaced only once the new one would survive a crash.
      await this.host.save(this.groupIndex, this.id, snapshot, 'install');
    } finally {
      this.installing = false;
    }
    this.adopt(snapshot);
    this.host.restored(this.groupIndex, this.id, snapshot, 'install');
  }

  private adopt(snapshot: MachineSnapshot): void {
    this.durable = snapshot;
    this.reported = Math.max(this.reported, snapshot.instanceId);
    this.count = snapshot.count;
    this.digest = snapshot.digest;
    this.lastInstanceId = snapshot.instanceId;
  }
}

/**
 * The header, then filler derived from it (some KiB, so a transfer takes several pieces): a
 * receiver that got any byte wrong fails the decode.
 */
export function encodeSnapshot(snapshot: MachineSnapshot): Uint8Array {
  const filler = 1024 + (snapshot.count % 13) * 256;
  const bytes = Buffer.alloc(HEADER_BYTES + filler);
  bytes.writeDoubleBE(snapshot.instanceId, 0);
  bytes.writeUInt32BE(snapshot.count, 8);
  bytes.writeUInt32BE(snapshot.digest >>> 0, 12);
  for (let i = 0; i < filler; i++) bytes[HEADER_BYTES + i] = fillerByte(snapshot, i);
  return bytes;
}

export function decodeSnapshot(bytes: Buffer, instanceId: number): MachineSnapshot {
  if (bytes.length < HEADER_BYTES) throw new Error(`snapshot of ${bytes.length} bytes`);
  const snapshot = { instanceId: bytes.readDoubleBE(0), count: bytes.readUInt32BE(8), digest: bytes.readUInt32BE(12) };
  if (snapshot.instanceId !== instanceId) {
    throw new Error(`snapshot holds instance ${snapshot.instanceId}, announced ${instanceId}`);
  }
  const filler = bytes.length - HEADER_BYTES;
  if (filler !== 1024 + (snapshot.count % 13) * 256) throw new Error(`snapshot of ${bytes.length} bytes`);
  for (let i = 0; i < filler; i++) {
    if (bytes[HEADER_BYTES + i] !== fillerByte(snapshot, i)) throw new Error(`snapshot byte ${HEADER_BYTES + i} is wrong`);
  }
  return snapshot;
}

function fillerByte(snapshot: MachineSnapshot, index: number): number {
  return (snapshot.digest + index * 31 + snapshot.count) & 0xff;
}
