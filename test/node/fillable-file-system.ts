// The real file system with a disk that can be made to refuse writes, for node tests of storage
// failures: while `full`, every write (on each of the store's write paths), sync and creation fails
// with ENOSPC; `failMetadataWrites` makes that many of the next metadata writes (the store's `meta`
// file) fail the same way; while `readGate` is set, reads of open files wait for it (to hold a
// rebuild part way).
import { basename } from 'node:path';
import type { FileHandle } from '../../src/io/file-system.js';
import { DelegatingFileSystem } from '../support/delegating-file-system.js';

export class FillableFileSystem extends DelegatingFileSystem {
  full = false;
  failMetadataWrites = 0;
  /** Metadata writes refused because of `failMetadataWrites`. */
  metadataWritesRefused = 0;
  readGate: Promise<void> | null = null;
  /** Reads waiting at the gate. */
  readsWaiting = 0;

  override async open(path: string, readOnly: boolean): Promise<FileHandle> {
    return this.wrap(await this.real.open(path, readOnly));
  }

  override async create(path: string): Promise<FileHandle> {
    this.refuse();
    if (basename(path).startsWith('meta') && this.failMetadataWrites > 0) {
      this.failMetadataWrites--;
      this.metadataWritesRefused++;
      throw noSpace();
    }
    return this.wrap(await this.real.create(path));
  }


  private refuse(): void {
    if (this.full) throw noSpace();
  }

  private wrap(handle: FileHandle): FileHandle {
    // Every write path the real handle has, the durable write on the loop's thread included (the
    // store's usual path for a small write): a full disk must refuse all of them.
    const writeDurablySync = handle.writeDurablySync?.bind(handle);
    return {
      write: async (data, position) => { this.refuse(); await handle.write(data, position); },
      writeDurably: async (data, position) => {
        this.refuse();
        await (handle.writeDurably?.(data, position) ?? handle.write(data, position));
      },
      ...(writeDurablySync === undefined ? {} : {
        writeDurablySync: (data: Uint8Array, position: number): void => {
          this.refuse();
          writeDurablySync(data, position);
        },
      }),
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
