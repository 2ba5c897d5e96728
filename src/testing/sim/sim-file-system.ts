/**
 * An in-memory file system for the simulator, so nodes can run the real FileLogStore. What it
 * holds is what the node's disk holds: it outlives the node's processes. Every operation completes
 * after a random latency, in order, through the process's gate (dropped if the process died, held
 * while it is paused). Run it under LazyFileSystem, which keeps unsynced writes in the process's
 * memory: a crash then loses them, and a crash during a write-back keeps only some of its pages.
 */
import { dirname } from 'node:path';
import type { FileHandle, FileSystem } from '../../io/file-system.js';
import { SeededRandom } from '../../util/random.js';
import { SimDevice, type DeviceLatency, type ProcessGate } from './sim-device.js';
import type { SimScheduler } from './scheduler.js';

/** The disk: files and directories by path. */
export class SimFileStorage {
  readonly files = new Map<string, Buffer>();
  readonly directories = new Set<string>(['/']);
  /** Timing of this disk's operations; its trap crashes a node in the middle of its next write. */
  readonly device: SimDevice;
  /**
   * A full disk: a write that would grow a file fails with ENOSPC (one inside a file's present
   * size, like an append into a pre-allocated segment, still succeeds, as on a real file system).
   */
  full = false;
  /**
   * A failing device: every write puts some of its pages on disk (see pageSpans) and
   * fails with EIO, and every datasync and directory sync fails with EIO, appends into a
   * pre-allocated segment included.
   */
  failing = false;

  /** Which pages of a failed write land: a stream of its own, so the device's timing is unchanged. */
  readonly tears: SeededRandom;

  constructor(scheduler: SimScheduler, random: SeededRandom, latency: DeviceLatency) {
    this.device = new SimDevice(scheduler, random, () => latency);
    this.tears = new SeededRandom(random.seed * 40503 + 0x7ea5);
  }

  /** The file system one process life sees. */
  open(gate: ProcessGate): FileSystem {
    return new SimFileSystem(this, gate);
  }

  schedule<T>(gate: ProcessGate, operation: () => T, isWrite = false): Promise<T> {
    return this.device.schedule(gate, operation, isWrite);
  }


  file(path: string): Buffer {
    const data = this.files.get(path);
    if (data === undefined) throw Object.assign(new Error(`ENOENT: no such file, ${path}`), { code: 'ENOENT' });
    return data;
  }
}

class SimFileSystem implements FileSystem {
  private readonly storage: SimFileStorage;
  private readonly gate: ProcessGate;

  constructor(storage: SimFileStorage, gate: ProcessGate) {
    this.storage = storage;
    this.gate = gate;
  }

  open(path: string): Promise<FileHandle> {
    return this.storage.schedule(this.gate, () => {
      this.storage.file(path);
      return new SimFileHandle(this.storage, this.gate, path);
    });
  }

  create(path: string): Promise<FileHandle> {
    return this.storage.schedule(this.gate, () => {
      if (this.storage.files.has(path)) throw Object.assign(new Error(`EEXIST: ${path}`), { code: 'EEXIST' });
      if (!this.storage.directories.has(dirname(path))) throw new Error(`ENOENT: no directory for ${path}`);
      this.storage.files.set(path, Buffer.alloc(0));
      return new SimFileHandle(this.storage, this.gate, path);
    });
  }

  readFile(path: string): Promise<Buffer> {
    return this.storage.schedule(this.gate, () => Buffer.from(this.storage.file(path)));
  }

  readdir(path: string): Promise<string[]> {
    return this.storage.schedule(this.gate, () => {
      const prefix = path.endsWith('/') ? path : `${path}/`;
      const names: string[] = [];
      for (const entry of [...this.storage.files.keys(), ...this.storage.directories]) {
        if (entry.startsWith(prefix) && !entry.slice(prefix.length).includes('/') && entry.length > prefix.length) {
          names.push(entry.slice(prefix.length));
        }
      }
      return names.sort();
    });
  }

  mkdir(path: string): Promise<void> {
    return this.storage.schedule(this.gate, () => {
      for (let current = path; current !== '/' && current !== '.'; current = dirname(current)) {
        this.storage.directories.add(current);
      }
    });
  }

  unlink(path: string): Promise<void> {
    return this.storage.schedule(this.gate, () => {
      this.storage.file(path);
      this.storage.files.delete(path);
    });
  }

  rename(from: string, to: string): Promise<void> {
    return this.storage.schedule(this.gate, () => {
      const data = this.storage.file(from);
      this.storage.files.delete(from);
      this.storage.files.set(to, data);
    });
  }

  exists(path: string): Promise<boolean> {
    return this.storage.schedule(this.gate, () => this.storage.files.has(path) || this.storage.directories.has(path));
  }

  syncDirectory(path: string): Promise<void> {
    return this.storage.schedule(this.gate, () => {
      if (this.storage.failing) throw ioError(`fsync ${path}`);
    });
  }
}

class SimFileHandle implements FileHandle {
  private readonly storage: SimFileStorage;
  private readonly gate: ProcessGate;
  private readonly path: string;

  constructor(storage: SimFileStorage, gate: ProcessGate, path: string) {
    this.storage = storage;
    this.gate = gate;
    this.path = path;
  }

  write(data: Uint8Array, position: number): Promise<void> {
    const copy = Buffer.from(data);
    return this.storage.schedule(this.gate, () => this.writeNow(copy, position), true);
  }

  /**
   * A durable write made on the loop's thread (FileLogStore's inline writes): it is on the disk when
   * it returns, and takes no simulated time, since the process does nothing else meanwhile. It
   * fails as a scheduled write does; a crash cannot fall in its middle (nothing else runs then), so
   * it is the scheduled writes and the write-backs of LazyFileSystem that end torn.
   */
  writeDurablySync(data: Uint8Array, position: number): void {
    this.writeNow(Buffer.from(data), position);
  }

  private writeNow(copy: Buffer, position: number): void {
    if (this.storage.full && position + copy.length > this.storage.file(this.path).length) {
      throw Object.assign(new Error(`ENOSPC: no space left on device, write ${this.path}`), { code: 'ENOSPC' });
    }
    if (this.storage.failing) {
      // What a failed write leaves is unknown, but a device takes whole pages, in any order: each
      // of its pages lands, or not. A quarter of the failed writes land on a device that takes
      // 512-byte sectors instead (NVMe with 512-byte blocks and AWUPF = 0): every sector but those
      // holding the start of its first frame, through the kind byte after the 8-byte header (what
      // segment.ts needs zeroed to call it a tear; a write starting in a sector's last bytes loses two).
      if (this.storage.tears.chance(0.25)) {
        const kindByte = position + FIRST_FRAME_HEADER_AND_KIND_BYTES - 1;
        const lostEnd = (Math.floor(kindByte / SECTOR_BYTES) + 1) * SECTOR_BYTES;
        if (lostEnd < position + copy.length) this.put(copy.subarray(lostEnd - position), lostEnd);
      } else {
        for (const [from, to] of pageSpans(position, copy.length)) {
          if (this.storage.tears.chance(0.5)) this.put(copy.subarray(from - position, to - position), from);
        }
      }
      throw ioError(`write ${this.path}`);
    }
    this.put(copy, position);
  }

  private put(bytes: Buffer, position: number): void {
    let file = this.storage.file(this.path);
    if (position + bytes.length > file.length) {
      const grown = Buffer.alloc(position + bytes.length);
      file.copy(grown);
      file = grown;
      this.storage.files.set(this.path, file);
    }
    bytes.copy(file, position);
  }

  read(length: number, position: number): Promise<Buffer> {
    return this.storage.schedule(this.gate, () => {
      const file = this.storage.file(this.path);
      return Buffer.from(file.subarray(Math.min(position, file.length), Math.min(position + length, file.length)));
    });
  }

  datasync(): Promise<void> {
    return this.storage.schedule(this.gate, () => {
      if (this.storage.failing) throw ioError(`fdatasync ${this.path}`);
    });
  }

  size(): Promise<number> {
    return this.storage.schedule(this.gate, () => this.storage.file(this.path).length);
  }

  async close(): Promise<void> {}
}

/** The unit a device takes a write in, the page size, as LazyFileSystem writes back and segment.ts assumes. */
const PAGE_BYTES = 4096;

/** The unit of a device that only guarantees sectors; segment.ts cuts a write that lost its first. */
const SECTOR_BYTES = 512;

/** A log frame's header (length and CRC) and the record's kind byte after it. */
const FIRST_FRAME_HEADER_AND_KIND_BYTES = 9;

/**
 * The parts of a write of `length` bytes at `position`, one per page it touches, as [from, to)
 * file offsets. A failed write lands a random subset of them, never part of one: half of its bytes
 * instead tore pages in the middle, and a failed write followed by a failed attempt to zero it
 * left zeros over the start of its first frame with its later frames intact, which no page-wise
 * device produces and which segment.ts rightly takes for damage (simulator seed 64).
 */
export function pageSpans(position: number, length: number): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (let from = position; from < position + length;) {
    const to = Math.min(position + length, (Math.floor(from / PAGE_BYTES) + 1) * PAGE_BYTES);
    spans.push([from, to]);
    from = to;
  }
  return spans;
}

function ioError(operation: string): Error {
  return Object.assign(new Error(`EIO: i/o error, ${operation}`), { code: 'EIO' });
}
