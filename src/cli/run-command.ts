/**
 * Runs a command-line program: dispatches the first argument to a subcommand, prints usage for
 * `help`, and turns the outcome into an exit status (2 for usage errors, 1 for failures).
 */
import { UsageError } from './flags.js';

export type Subcommands = Readonly<Record<string, (argv: readonly string[]) => Promise<number>>>;

export function runCommand(program: string, usage: string, subcommands: Subcommands, argv: readonly string[]): void {
  dispatch(usage, subcommands, argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof UsageError) {
        console.error(`${program}: ${error.message}\n\n${usage}`);
        process.exitCode = 2;
      } else {
        console.error(error);
        process.exitCode = 1;
      }
    },
  );
}

async function dispatch(usage: string, subcommands: Subcommands, argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === 'help' || name === '--help') {
    console.log(usage);
    return name === undefined ? 2 : 0;
  }
  const subcommand = subcommands[name];
  if (subcommand === undefined) throw new UsageError(`unknown command "${name}"`);
  return subcommand(rest);
}
