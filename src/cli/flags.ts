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

/** A failure the operator can act on, printed as one line without a stack trace. */
export class CommandError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = 'CommandError';
  }
}

/**
 * A listen error (or one caused by it) as one line, "--http HOST:PORT: the port is in use", with
 * exit status 2 as a bad setting; undefined for any other error.
 */
export function listenFailure(what: string, error: unknown): CommandError | undefined {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    switch ((cause as NodeJS.ErrnoException).code) {
      case 'EADDRINUSE': return new CommandError(`${what}: the port is in use (is another node running?)`, 2);
      case 'EADDRNOTAVAIL': return new CommandError(`${what}: the address is not this machine's`, 2);
      case 'EACCES': return new CommandError(`${what}: not allowed to listen there`, 2);
      default:
    }
  }
  return undefined;
}

export function parseFlags(argv: readonly string[], spec: FlagSpec): Flags {
  const flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument "${arg}"`);
    // Split at the first '=' only: a value may hold more (--peers=1=host:port,2=host:port).
    const equals = arg.indexOf('=');
    const name = equals < 0 ? arg.slice(2) : arg.slice(2, equals);
    const inline = equals < 0 ? undefined : arg.slice(equals + 1);
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

/**
 * Flags mixed with positional arguments (`kv put KEY VALUE --version 3`). A flag that takes a
 * value consumes the next argument; after `--` everything is positional (a value may start with --).
 */
export function parseCommandLine(argv: readonly string[], spec: FlagSpec): { flags: Flags; positionals: string[] } {
  const flagArgs: string[] = [];
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    flagArgs.push(arg);
    const name = arg.slice(2).split('=', 1)[0] as string;
    if (!arg.includes('=') && spec[name] !== undefined && spec[name] !== 'boolean' && i + 1 < argv.length) {
      flagArgs.push(argv[++i] as string);
    }
  }
  return { flags: parseFlags(flagArgs, spec), positionals };
}
