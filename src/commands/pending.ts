import { ColdstartError } from '../core/errors.js';

/** Clear refusal for behaviour that is specified but not built yet (exit 2, names the issue). */
export function notYet(what: string, issue: string): never {
  throw new ColdstartError('UNSUPPORTED', `${what} is not implemented yet in this version of coldstart`, { hint: `It is tracked in ${issue}; \`coldstart doctor\` works today.` });
}
