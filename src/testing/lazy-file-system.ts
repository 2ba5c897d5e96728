/**
 * A FileSystem for crash tests that keeps every file's unsynced data in memory, the way the page
 * cache does, and writes it to the real file only on `datasync()` of that file. Killing the process
 * (SIGKILL) then loses exactly the writes that were never datasynced: what a power cut does to the
 * page cache, which a real SIGKILL does not (the kernel keeps the dirty pages and writes them back
 * anyway, so a store that forgot to fsync would pass a plain kill test).
 *
 * The model:
 * - Data is lazy. `write` goes to an in-memory overlay of the file; `read`, `size` and `readFile`
 *   see the overlay over the real bytes, so the process sees its own writes. Gaps between the real
 *   end of the file and overlay data read as zeros (a sparse hole).
 * - `datasync` writes the overlay back and then fdatasyncs the real file. It writes back page by
 *   page in file order, so a crash during it persists a prefix of the pages (a torn tail), as a
 *   power cut during write-back may. With `writeback: 'reverse'` it goes last page first, so a
 *   crash can keep later pages without earlier ones, as a disk completing writes out of order may.
 * - The overlay belongs to the file, not to the descriptor (as the page cache belongs to the
 *   inode): every handle of a file shares it, `close` keeps it, `datasync` on any writable handle
 *   flushes it, `rename` carries it to the new name and `unlink` drops it.
 * - Names are eager. `create`, `rename`, `unlink` and `mkdir` act on the real file system at once:
 *   a file exists for real (empty) from its creation, and only its data is lazy. So a missing
 *   fsync of a directory is not caught here; `syncDirectory` just passes through.
 * - The overlay lives in this object: anything not datasynced is lost when the process ends, even
 *   cleanly, or when `crash()` drops it in-process.
 */
import { resolve } from 'node:path';
import { NODE_FILE_SYSTEM, type FileHandle, type FileSystem } from '../io/file-system.js';

export interface LazyFileSystemOptions {
  /** The file system the data reaches on datasync (default: the real one). */
  readonly inner?: FileSystem;
  /** The write-back unit of `datasync`, in bytes (default 4096). */
  readonly pageBytes?: number;
  /** The order `datasync` writes pages back in (default 'in-order'). */
  readonly writeback?: 'in-order' | 'reverse';
}

/** Bytes written at `offset` and not yet datasynced. */
interface Extent {
  readonly offset: number;
  readonly data: Buffer;
}

function layExtents(extents: readonly Extent[], target: Buffer, position: number): void {
  const end = position + target.length;
  for (const { offset, data } of extents) {
    const from = Math.max(offset, position);
    const to = Math.min(offset + data.length, end);
    if (from < to) data.copy(target, from - position, from - offset, to - offset);
  }
}

function extentsEnd(extents: readonly Extent[]): number {
  const last = extents[extents.length - 1];
  return last === undefined ? 0 : last.offset + last.data.length;
}

/**
 * The unsynced data of one file: non-overlapping extents in offset order. The array is replaced,
 * never changed in place, so a reader may keep the one it saw.
 */
class Overlay {
  extents: readonly Extent[] = [];
  /** Bumped whenever extents are dropped (a flush, a crash): whole-file reads retry across one. */
  generation = 0;

  write(offset: number, data: Uint8Array): void {
    const kept = this.without(offset, offset + data.length);
    if (data.length > 0) kept.push({ offset, data: Buffer.from(data) });
    this.extents = kept.sort((a, b) => a.offset - b.offset);
  }

  /** The extents with [offset, end) cut out of them: the parts of older extents a range does not cover. */
  private without(offset: number, end: number): Extent[] {
    const kept: Extent[] = [];
    for (const extent of this.extents) {
      const extentEnd = extent.offset + extent.data.length;
      if (extentEnd <= offset || extent.offset >= end) {
        kept.push(extent);
        continue;
      }
      if (extent.offset < offset) {
        kept.push({ offset: extent.offset, data: extent.data.subarray(0, offset - extent.offset) });
      }
      if (extentEnd > end) kept.push({ offset: end, data: extent.data.subarray(end - extent.offset) });
    }
    return kept;
  }

  /** Lay the overlay over `target`, which holds the file's bytes from `position`. */
  apply(target: Buffer, position: number): void {
    layExtents(this.extents, target, position);
  }

  end(): number {
    return extentsEnd(this.extents);
  }

  /** Drop what the overlay holds of [offset, offset + length): the real file has newer bytes there. */
  erase(offset: number, length: number): void {
    if (length === 0) return;
    this.extents = this.without(offset, offset + length);
    this.generation++;
  }

  /** Drop extents that have reached the real file (by identity: later writes stay). */
  forget(synced: readonly Extent[]): void {
    const done = new Set(synced);
    this.extents = this.extents.filter((extent) => !done.has(extent));
    this.generation++;
  }

  bytes(): number {
    return this.extents.reduce((sum, extent) => sum + extent.data.length, 0);
  }
}

export class LazyFileSystem implements FileSystem {
  private readonly inner: FileSystem;
  private readonly pageBytes: number;
  private readonly reverse: boolean;
  private readonly overlays = new Map<string, Overlay>();

  constructor(options: LazyFileSystemOptions = {}) {
    this.inner = options.inner ?? NODE_FILE_SYSTEM;
    this.pageBytes = options.pageBytes ?? 4096;
    this.reverse = options.writeback === 'reverse';
    if (!Number.isSafeInteger(this.pageBytes) || this.pageBytes < 1) {
      throw new RangeError(`pageBytes must be a positive integer; got ${this.pageBytes}`);
    }
  }

  /** Power cut in-process: every write not yet datasynced is gone; open handles stay usable. */
  crash(): void {
    for (const overlay of this.overlays.values()) {
      overlay.extents = [];
      overlay.generation++;
    }
  }

  /** Bytes written and not yet datasynced (all files, or one). */
  unsyncedBytes(path?: string): number {
    if (path !== undefined) return this.overlays.get(resolve(path))?.bytes() ?? 0;
    let sum = 0;
    for (const overlay of this.overlays.values()) sum += overlay.bytes();
    return sum;
  }

  async open(path: string, readOnly: boolean): Promise<FileHandle> {
    const handle = await this.inner.open(path, readOnly);
    return new LazyFileHandle(handle, this.overlayOf(path), readOnly, this.pageBytes, this.reverse);
  }

  async create(path: string): Promise<FileHandle> {
    const handle = await this.inner.create(path);
    const overlay = new Overlay();
    this.overlays.set(resolve(path), overlay);
    return new LazyFileHandle(handle, overlay, false, this.pageBytes, this.reverse);
  }

  async readFile(path: string): Promise<Buffer> {
    const overlay = this.overlays.get(resolve(path));
    for (;;) {
      const generation = overlay?.generation;
      const real = await this.inner.readFile(path);
      if (overlay === undefined) return real;
      if (overlay.generation !== generation) continue;
      if (overlay.extents.length === 0) return real;
      const bytes = Buffer.alloc(Math.max(real.length, overlay.end()));
      real.copy(bytes);
      overlay.apply(bytes, 0);
      return bytes;
    }
  }

  readdir(path: string): Promise<string[]> {
    return this.inner.readdir(path);
  }

  mkdir(path: string): Promise<void> {
    return this.inner.mkdir(path);
  }

  async unlink(path: string): Promise<void> {
    await this.inner.unlink(path);
    this.overlays.delete(resolve(path));
  }

  async rename(from: string, to: string): Promise<void> {
    await this.inner.rename(from, to);
    const overlay = this.overlays.get(resolve(from));
    this.overlays.delete(resolve(from));
    if (overlay === undefined) this.overlays.delete(resolve(to));
    else this.overlays.set(resolve(to), overlay);
  }

  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }

  syncDirectory(path: string): Promise<void> {
    return this.inner.syncDirectory(path);
  }

  private overlayOf(path: string): Overlay {
    const key = resolve(path);
    let overlay = this.overlays.get(key);
    if (overlay === undefined) {
      overlay = new Overlay();
      this.overlays.set(key, overlay);
    }
    return overlay;
  }
}

class LazyFileHandle implements FileHandle {
  private readonly inner: FileHandle;
  private readonly overlay: Overlay;
  private readonly readOnly: boolean;
  private readonly pageBytes: number;
  private readonly reverse: boolean;
  /**
   * A durable write on the calling thread, when the real file offers one: it bypasses the page
   * cache this object models (O_DSYNC data is on the disk when the call returns), so it goes to the
   * real file at once and replaces whatever unsynced bytes the overlay held in its range.
   */
  readonly writeDurablySync?: (data: Uint8Array, position: number) => void;

  constructor(inner: FileHandle, overlay: Overlay, readOnly: boolean, pageBytes: number, reverse: boolean) {
    this.inner = inner;
    this.overlay = overlay;
    this.readOnly = readOnly;
    this.pageBytes = pageBytes;
    this.reverse = reverse;
    const durable = inner.writeDurablySync?.bind(inner);
    if (durable !== undefined) {
      this.writeDurablySync = (data, position) => {
        if (this.readOnly) throw new Error('EBADF: write to a file opened read-only');
        this.overlay.erase(position, data.length);
        durable(data, position);
      };
    }
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    if (this.readOnly) throw new Error('EBADF: write to a file opened read-only');
    this.overlay.write(position, data);
  }

  /**
   * The real file's bytes with the overlay laid over them. The overlay as it was when the read
   * began is laid first, then the overlay as it is: extents flushed to the real file while the
   * read was under way (which the real read may have missed) are in the first, writes made since in
   * the second. (This used to retry whenever a flush happened during the read; with reads issued
   * many at once and a flush on every durable write, a read could then retry forever.)
   */
  async read(length: number, position: number): Promise<Buffer> {
    const before = this.overlay.extents;
    const overlayEnd = Math.max(this.overlay.end(), extentsEnd(before));
    const end = Math.min(position + length, Math.max(await this.inner.size(), overlayEnd, this.overlay.end()));
    if (end <= position) return Buffer.alloc(0);
    const bytes = Buffer.alloc(end - position);
    (await this.inner.read(end - position, position)).copy(bytes);
    layExtents(before, bytes, position);
    this.overlay.apply(bytes, position);
    return bytes;
  }

  /** Write the overlay back page by page (in file order, or reversed), then fdatasync the real file. */
  async datasync(): Promise<void> {
    const extents = this.readOnly ? [] : [...this.overlay.extents];
    const pages: Array<{ readonly at: number; readonly bytes: Buffer }> = [];
    for (const { offset, data } of extents) {
      const end = offset + data.length;
      for (let at = offset; at < end;) {
        const pageEnd = Math.min(end, (Math.floor(at / this.pageBytes) + 1) * this.pageBytes);
        pages.push({ at, bytes: data.subarray(at - offset, pageEnd - offset) });
        at = pageEnd;
      }
    }
    if (this.reverse) pages.reverse();
    for (const { at, bytes } of pages) await this.inner.write(bytes, at);
    await this.inner.datasync();
    if (extents.length > 0) this.overlay.forget(extents);
  }

  async size(): Promise<number> {
    for (;;) {
      const generation = this.overlay.generation;
      const real = await this.inner.size();
      if (this.overlay.generation === generation) return Math.max(real, this.overlay.end());
    }
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
