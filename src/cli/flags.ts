/** A small, strict command-line flag parser: unknown flags and missing values are errors. */
export type FlagType = 'string' | 'number' | 'boolean';
export type FlagSpec = Readonly<Record<string, FlagType>>;
export type Flags = Record<string, string | number | boolean | undefined>;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function parseFlags(argv: readonly string[], spec: FlagSpec): Flags {
  const flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    const type = spec[name];
    if (type === undefined) throw new UsageError(`unknown flag --${name}`);
    if (type === 'boolean') {
      flags[name] = inline === undefined ? true : inline !== 'false';
      continue;
    }
    const raw = inline ?? argv[++i];
    if (raw === undefined) throw new UsageError(`--${name} needs a value`);
    if (type === 'number') {
      const value = Number(raw);
      if (!Number.isSafeInteger(value)) throw new UsageError(`--${name} must be an integer; got "${raw}"`);
      flags[name] = value;
    } else {
      flags[name] = raw;
    }
  }
  return flags;
}
