/**
 * Runs a command-line program: dispatches the first argument to a subcommand, prints usage for
 * `help`, and turns the outcome into an exit status (2 for usage errors, 1 for failures). A usage
 * error prints the error and one line naming the `--help` that explains the command, not every
 * command's usage (when the program names its subcommands' actions); a CommandError is one line, without a stack trace.
 */
import { CommandError, UsageError } from './flags.js';

export type Subcommands = Readonly<Record<string, (argv: readonly string[]) => Promise<number>>>;

/** Per subcommand, its actions (`kv put`): a usage error points at the action's --help. */
export type SubcommandActions = Readonly<Record<string, readonly string[]>>;

export function runCommand(
  program: string, usage: string, subcommands: Subcommands, argv: readonly string[], actions?: SubcommandActions,
): void {
  dispatch(usage, subcommands, argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      if (error instanceof UsageError) {
        // Without actions, the whole usage (the bench's small program); with them, one line.
        console.error(actions === undefined ? `${program}: ${error.message}\n\n${usage}`
          : `${program}: ${error.message}\nrun '${helpCommand(program, subcommands, actions, argv)}' for usage`);
        process.exitCode = 2;
      } else if (error instanceof CommandError) {
        console.error(`${program}: ${error.message}`);
        process.exitCode = error.exitCode;
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

/** `multipaxos kv put --help` for `multipaxos kv put ...`; as much of it as names a known command. */
function helpCommand(
  program: string, subcommands: Subcommands, actions: SubcommandActions, argv: readonly string[],
): string {
  const [name, action] = argv;
  if (name === undefined || !Object.hasOwn(subcommands, name)) return `${program} --help`;
  const known = action !== undefined && (actions[name] ?? []).includes(action);
  return `${program} ${name}${known ? ` ${action}` : ''} --help`;
}
