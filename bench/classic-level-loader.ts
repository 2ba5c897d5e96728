/**
 * The storage benchmark's LevelDB comparison, loaded only when asked for. classic-level is not a
 * dependency of the package: its native install script made every `npm ci` warn, for a module only
 * this benchmark uses. Install it beside the checkout (`npm install --no-save classic-level`) to
 * measure LevelDB; without it the benchmark measures a plain append file instead and says so.
 * The types below are the part of classic-level's API the benchmark calls.
 */

export interface LevelDb {
  open(): Promise<void>;
  close(): Promise<void>;
  batch(
    operations: readonly ({ type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer })[],
    options: { sync: boolean },
  ): Promise<void>;
  clear(range: { lt: Buffer }): Promise<void>;
  get(key: Buffer): Promise<Buffer | undefined>;
}

export interface LevelModule {
  readonly ClassicLevel: new (
    directory: string, options: { keyEncoding: 'buffer'; valueEncoding: 'buffer' },
  ) => LevelDb;
}

/** A name in a variable: the compiler does not look for the module, which is usually not installed. */
const MODULE = 'classic-level';

export const LEVEL_MISSING_HINT = 'it is not a dependency of multipaxos; `npm install --no-save classic-level` adds it';

export async function loadLevel(): Promise<LevelModule> {
  try {
    return (await import(MODULE)) as LevelModule;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') {
      throw new Error(`not installed: ${LEVEL_MISSING_HINT}`);
    }
    throw error;
  }
}
