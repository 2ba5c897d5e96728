// A small tmpfs mounted for a test (needs root; the test is skipped otherwise), for real disk faults:
// a full file system (ENOSPC) and one remounted read-only (EROFS).
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLogStore, type FileLogStoreOptions } from '../../src/io/file-log-store.js';

function run(command: string, args: string[]): string | null {
  try {
    execFileSync(command, args, { stdio: 'pipe', timeout: 10_000 });
    return null;
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    return stderr !== undefined && stderr !== '' ? stderr : String(error);
  }
}

export interface Mount {
  readonly path: string;
  remount(options: string): void;
  release(): Promise<void>;
}

/** A fresh tmpfs of `size`, or the reason it could not be mounted. */
export async function mountTmpfs(size: string): Promise<Mount | string> {
  const path = await mkdtemp(join(tmpdir(), 'disk-faults-'));
  const failure = process.getuid?.() === 0 ? run('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path])
    : 'not running as root';
  if (failure !== null) {
    await rm(path, { recursive: true, force: true });
    return failure;
  }
  return {
    path,
    remount(options) {
      const error = run('mount', ['-o', `remount,${options}`, path]);
      if (error !== null) throw new Error(`mount -o remount,${options} ${path}: ${error}`);
    },
    async release() {
      if (run('umount', [path]) !== null) run('umount', ['-l', path]);
      await rm(path, { recursive: true, force: true });
    },
  };
}

export type OpenStore = (options: FileLogStoreOptions) => Promise<FileLogStore>;

/**
 * Mount, run `body`, always close every store it opened and unmount; skip the test when no tmpfs
 * can be mounted.
 */
export async function withTmpfs(t: TestContext, size: string, body: (mount: Mount, open: OpenStore) => Promise<void>,
): Promise<void> {
  const mount = await mountTmpfs(size);
  if (typeof mount === 'string') {
    t.skip(`needs root to mount a tmpfs (${mount})`);
    return;
  }
  const stores: FileLogStore[] = [];
  try {
    await body(mount, async (options) => {
      const store = await FileLogStore.open(options);
      stores.push(store);
      return store;
    });
  } finally {
    for (const store of stores) await store.close().catch(() => undefined);
    await mount.release();
  }
}

export async function rejection(promise: Promise<unknown>, timeoutMs = 10_000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([promise, timeout]);
  } catch (error) {
    if (error instanceof Error && error.message.startsWith('still pending')) throw error;
    return error;
  } finally {
    clearTimeout(timer);
  }
  return assert.fail('expected a rejection, but it succeeded');
}

