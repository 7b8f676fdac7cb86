/**
 * Engines name their options as their API does (`chunkBytes: expected …`, `details.option`: see invalidOption in
 * src/core/errors.ts); a command knows which of its flags fed which option and rewords such an error with the flag
 * (`--chunk-bytes: expected …`), so a CLI user reads the flag they typed and a library user the option they passed.
 */
import { ColdstartError, isColdstartError } from '../core/errors.js';

/** Engine option → the command's flag that sets it, e.g. `{ chunkBytes: '--chunk-bytes' }`. */
export type FlagNames = Readonly<Record<string, string>>;

/** An engine's option error reworded with the command's flag; any other error (or an option not in `flags`) as it is. */
export function asFlagError(e: unknown, flags: FlagNames): unknown {
  if (!isColdstartError(e)) return e;
  const option = e.details?.option;
  if (typeof option !== 'string' || !Object.prototype.hasOwnProperty.call(flags, option) || !e.message.startsWith(`${option}:`)) return e;
  const flag = flags[option]!;
  return new ColdstartError(e.code, `${flag}${e.message.slice(option.length)}`, { hint: e.hint, cause: e, details: { ...e.details, flag } });
}

/** Runs an engine call; an option it refuses comes back named by the command's flag. */
export async function withFlagNames<T>(flags: FlagNames, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw asFlagError(e, flags);
  }
}
