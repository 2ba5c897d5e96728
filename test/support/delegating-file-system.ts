// A FileSystem that hands every call to the real one: fault-injecting test file systems extend it
// and override only the calls they interfere with.
import { NODE_FILE_SYSTEM, type FileHandle, type FileSystem } from '../../src/io/file-system.js';

export class DelegatingFileSystem implements FileSystem {
  protected readonly real: FileSystem = NODE_FILE_SYSTEM;

  open(path: string, readOnly: boolean): Promise<FileHandle> { return this.real.open(path, readOnly); }
  create(path: string): Promise<FileHandle> { return this.real.create(path); }
  readFile(path: string): Promise<Buffer> { return this.real.readFile(path); }
  readdir(path: string): Promise<string[]> { return this.real.readdir(path); }
  mkdir(path: string): Promise<void> { return this.real.mkdir(path); }
  unlink(path: string): Promise<void> { return this.real.unlink(path); }
  rename(from: string, to: string): Promise<void> { return this.real.rename(from, to); }
  exists(path: string): Promise<boolean> { return this.real.exists(path); }
  syncDirectory(path: string): Promise<void> { return this.real.syncDirectory(path); }
}
