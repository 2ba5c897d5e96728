/** Shared pieces of the FileLogStore tests (not a test file itself). */
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { NODE_FILE_SYSTEM, type FileHandle, type FileSystem } from '../../src/io/file-system.js';
import { scanSegment, segmentName } from '../../src/io/segment.js';
import type { Logger } from '../../src/runtime/interfaces.js';

export async function tempDirectory(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), `${prefix}-`));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export function segmentPath(directory: string, sequence: number): string {
  return join(directory, 'log', segmentName(sequence));
}

/** The segment files of a store directory, by sequence, with the records each holds. */
export async function segmentsOf(directory: string): Promise<Map<number, { bytes: number;
  records: { group: number; epoch: number; instance: number; offset: number }[]; dataEnd: number }>> {
  const result = new Map<number, { bytes: number; records: { group: number; epoch: number; instance: number;
    offset: number }[]; dataEnd: number }>();
  let highestWrite = -1;
  for (const name of (await readdir(join(directory, 'log'))).sort()) {
    const match = /^(\d{10})\.log$/.exec(name);
    if (match === null) continue;
    const data = await readFile(join(directory, 'log', name));
    const scan = scanSegment(data, highestWrite);
    highestWrite = scan.highestWrite;
    result.set(Number(match[1]), {
      bytes: data.length,
      dataEnd: scan.dataEnd,
      records: scan.records.map((stored, i) => ({ group: stored.groupIndex, epoch: stored.epoch,
        instance: stored.record.instanceId, offset: scan.offsets[i] as number })),
    });
  }
  return result;
}

/**
 * Wait until the store's background pre-allocation has settled: no temporary segment file, and the
 * highest segment is an empty spare. Listings taken before that race with the spare's creation.
 */
export async function spareReady(directory: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const names = await readdir(join(directory, 'log'));
    const segments = await segmentsOf(directory);
    const highest = Math.max(...segments.keys());
    if (!names.some((name) => name.endsWith('.tmp')) && segments.get(highest)?.dataEnd === 0) return;
    if (Date.now() > deadline) throw new Error(`no spare segment in ${directory}: ${names.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** Every file under `directory` with its size, modification time and content hash. */
export async function snapshot(directory: string): Promise<Map<string, string>> {
  const result = new Map<string, string>();
  const walk = async (path: string): Promise<void> => {
    const info = await stat(path);
    const name = relative(directory, path) || '.';
    if (info.isDirectory()) {
      result.set(name, `dir mtime=${info.mtimeMs}`);
      for (const entry of (await readdir(path)).sort()) await walk(join(path, entry));
    } else {
      const hash = createHash('sha256').update(await readFile(path)).digest('hex');
      result.set(name, `file size=${info.size} mtime=${info.mtimeMs} sha256=${hash}`);
    }
  };
  await walk(directory);
  return result;
}

export interface LogLine {
  readonly level: 'info' | 'warn' | 'error';
  readonly message: string;
  readonly fields: Record<string, unknown> | undefined;
}

export class RecordingLogger implements Logger {
  readonly lines: LogLine[] = [];
  info(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'info', message, fields });
  }
  warn(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'warn', message, fields });
  }
  error(message: string, fields?: Record<string, unknown>): void {
    this.lines.push({ level: 'error', message, fields });
  }
}

export interface FsEvent {
  readonly op: 'open' | 'create' | 'write' | 'read' | 'datasync' | 'close' | 'unlink' | 'rename' | 'mkdir'
    | 'syncDirectory' | 'readFile' | 'readdir';
  readonly path: string;
  readonly position?: number;
  readonly length?: number;
}

/** The real file system, with a log of every operation the store does through it. */
export class RecordingFileSystem implements FileSystem {
  readonly events: FsEvent[] = [];
  private readonly inner: FileSystem;

  constructor(inner: FileSystem = NODE_FILE_SYSTEM) {
    this.inner = inner;
  }

  /** How many `op` operations on exactly `path` (every path when omitted). */
  count(op: FsEvent['op'], path?: string): number {
    return this.events.filter((event) => event.op === op && (path === undefined || event.path === path)).length;
  }

  private wrap(path: string, handle: FileHandle): FileHandle {
    const events = this.events;
    return {
      async write(data, position) {
        events.push({ op: 'write', path, position, length: data.length });
        await handle.write(data, position);
      },
      async read(length, position) {
        events.push({ op: 'read', path, position, length });
        return handle.read(length, position);
      },
      async datasync() {
        await handle.datasync();
        events.push({ op: 'datasync', path });
      },
      size: () => handle.size(),
      async close() {
        events.push({ op: 'close', path });
        await handle.close();
      },
    };
  }

  async open(path: string, readOnly: boolean): Promise<FileHandle> {
    this.events.push({ op: 'open', path });
    return this.wrap(path, await this.inner.open(path, readOnly));
  }

  async create(path: string): Promise<FileHandle> {
    this.events.push({ op: 'create', path });
    return this.wrap(path, await this.inner.create(path));
  }

  readFile(path: string): Promise<Buffer> {
    this.events.push({ op: 'readFile', path });
    return this.inner.readFile(path);
  }

  readdir(path: string): Promise<string[]> {
    this.events.push({ op: 'readdir', path });
    return this.inner.readdir(path);
  }

  mkdir(path: string): Promise<void> {
    this.events.push({ op: 'mkdir', path });
    return this.inner.mkdir(path);
  }

  unlink(path: string): Promise<void> {
    this.events.push({ op: 'unlink', path });
    return this.inner.unlink(path);
  }

  rename(from: string, to: string): Promise<void> {
    this.events.push({ op: 'rename', path: `${from} -> ${to}` });
    return this.inner.rename(from, to);
  }

  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }

  async syncDirectory(path: string): Promise<void> {
    await this.inner.syncDirectory(path);
    this.events.push({ op: 'syncDirectory', path });
  }
}
