/** The logger of `--verbose`: one line per event on standard error, fields as JSON. */
import type { Logger } from '../runtime/interfaces.js';

function line(level: string): Logger['info'] {
  return (message, fields) => console.error(`${level} ${message}${fields === undefined ? '' : ` ${JSON.stringify(fields)}`}`);
}

export const STDERR_LOGGER: Logger = { info: line('info'), warn: line('warn'), error: line('error') };
