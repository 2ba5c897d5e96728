// The real file system with a disk that can be made to refuse writes, for node tests of storage
// failures: while `full`, every write, sync and creation fails with ENOSPC; `failMetadataWrites`
// makes that many of the next metadata writes (the store's `meta` file) fail the same way; while
// `readGate` is set, reads of open files wait for it (to hold a rebuild part way).
import { basename } from 'node:path';
import { NODE_FILE_SYSTEM, type FileHandle, type FileSystem } from '../../src/io/file-system.js';

export class FillableFileSystem implements FileSystem {
  full = false;
  failMetadataWrites = 0;
  /** Metadata writes refused because of `failMetadataWrites`. */
  metadataWritesRefused = 0;
  readGate: Promise<void> | null = null;
  /** Reads waiting at the gate. */
  readsWaiting = 0;
  private readonly real = NODE_FILE_SYSTEM;

  async open(path: string, readOnly: boolean): Promise<FileHandle> {
    return this.wrap(await this.real.open(path, readOnly));
  }

  async create(path: string): Promise<FileHandle> {
    this.refuse();
    if (basename(path).startsWith('meta') && this.failMetadataWrites > 0) {
      this.failMetadataWrites--;
      this.metadataWritesRefused++;
      throw noSpace();
    }
    return this.wrap(await this.real.create(path));
  }

  readFile(path: string): Promise<Buffer> { return this.real.readFile(path); }
  readdir(path: string): Promise<string[]> { return this.real.readdir(path); }
  mkdir(path: string): Promise<void> { return this.real.mkdir(path); }
  unlink(path: string): Promise<void> { return this.real.unlink(path); }
  rename(from: string, to: string): Promise<void> { return this.real.rename(from, to); }
  exists(path: string): Promise<boolean> { return this.real.exists(path); }
  syncDirectory(path: string): Promise<void> { return this.real.syncDirectory(path); }

  private refuse(): void {
    if (this.full) throw noSpace();
  }

  private wrap(handle: FileHandle): FileHandle {
    return {
      write: async (data, position) => { this.refuse(); await handle.write(data, position); },
      writeDurably: async (data, position) => {
        this.refuse();
        await (handle.writeDurably?.(data, position) ?? handle.write(data, position));
      },
      read: async (length, position) => {
        if (this.readGate !== null) {
          this.readsWaiting++;
          await this.readGate;
          this.readsWaiting--;
        }
        return await handle.read(length, position);
      },
      datasync: async () => { this.refuse(); await handle.datasync(); },
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }
}

function noSpace(): Error {
  return Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
}
