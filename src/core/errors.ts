/**
 * One error class for every expected failure. The `code` is stable (tests and JSON consumers key on it);
 * the exit code follows DESIGN.md: 1 budget/verification, 2 usage or refused input, 3 environment.
 */
export const ExitCode = {
  OK: 0,
  BUDGET: 1,
  USAGE: 2,
  ENV: 3,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Stable error codes and the exit code each maps to. Add new codes here, never inline. */
export const ERROR_CODES = {
  // 1: a budget exceeded or a verification mismatch
  BUDGET_EXCEEDED: ExitCode.BUDGET,
  VERIFY_MISMATCH: ExitCode.BUDGET,
  // 2: usage errors and refused input
  USAGE: ExitCode.USAGE,
  BAD_FLAG: ExitCode.USAGE,
  BAD_BUDGET: ExitCode.USAGE,
  BAD_CONFIG: ExitCode.USAGE,
  UNKNOWN_MODEL: ExitCode.USAGE,
  NOT_FOUND: ExitCode.USAGE,
  BAD_INPUT: ExitCode.USAGE,
  CORRUPT_FILE: ExitCode.USAGE,
  HOSTILE_FILE: ExitCode.USAGE,
  UNSUPPORTED: ExitCode.USAGE,
  AMBIGUOUS: ExitCode.USAGE,
  OUTPUT_EXISTS: ExitCode.USAGE,
  REPO_NOT_FOUND: ExitCode.USAGE,
  REVISION_NOT_FOUND: ExitCode.USAGE,
  ENTRY_NOT_FOUND: ExitCode.USAGE,
  // 3: the environment failed us
  ENV: ExitCode.ENV,
  NETWORK: ExitCode.ENV,
  /** A server answered, but with an error or something that is not its API (garbage, wrong shape). */
  BAD_RESPONSE: ExitCode.ENV,
  TIMEOUT: ExitCode.ENV,
  DISK_FULL: ExitCode.ENV,
  PERMISSION: ExitCode.ENV,
  NO_GPU: ExitCode.ENV,
  GPU_OOM: ExitCode.ENV,
  NATIVE_UNAVAILABLE: ExitCode.ENV,
  GATED: ExitCode.ENV,
  OFFLINE: ExitCode.ENV,
  MISSING_DEPENDENCY: ExitCode.ENV,
  INTERRUPTED: ExitCode.ENV,
  INTERNAL: ExitCode.ENV,
} as const;
export type ErrorCode = keyof typeof ERROR_CODES;

export interface ColdstartErrorOptions {
  /** What the user can do about it; printed on its own line after the message. */
  hint?: string;
  cause?: unknown;
  /** Extra machine-readable facts for --json. */
  details?: Record<string, unknown>;
}

export class ColdstartError extends Error {
  readonly code: ErrorCode;
  readonly hint?: string;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: ColdstartErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ColdstartError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
  }

  get exitCode(): ExitCodeValue {
    return ERROR_CODES[this.code];
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, exitCode: this.exitCode, ...(this.details ? { details: this.details } : {}) };
  }
}

export function isColdstartError(e: unknown): e is ColdstartError {
  return e instanceof ColdstartError;
}

/** Argument errors all read the same: `--flag: expected X, got "Y"` (sharp's one-helper rule). */
export function invalidArg(flag: string, expected: string, got: unknown, hint?: string): ColdstartError {
  const shown = typeof got === 'string' ? JSON.stringify(got) : String(got);
  return new ColdstartError('BAD_FLAG', `${flag}: expected ${expected}, got ${shown}`, { hint });
}

/**
 * An engine's refusal of one of its own options, named as its API names it (`chunkBytes: expected …`), never by a
 * CLI flag: library callers (src/index.ts) pass options, not flags. `details.option` lets a command reword it with
 * its flag (src/commands/flag-names.ts: `--chunk-bytes: expected …`).
 */
export function invalidOption(option: string, expected: string, got: unknown, hint?: string): ColdstartError {
  const e = invalidArg(option, expected, got, hint);
  return new ColdstartError(e.code, e.message, { hint, details: { option } });
}

/**
 * Maps a Node system error (ENOENT, EACCES, ENOSPC, …) on `path` to a ColdstartError with the right
 * exit code and an actionable hint. Anything unknown becomes ENV with the original message.
 */
export function fromSystemError(err: unknown, path: string, action = 'access'): ColdstartError {
  if (err instanceof ColdstartError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = e?.code;
  switch (code) {
    case 'ENOENT':
      return new ColdstartError('NOT_FOUND', `${path}: no such file or directory`, { cause: err, hint: 'Check the path.' });
    case 'EISDIR':
      return new ColdstartError('BAD_INPUT', `${path}: is a directory, expected a file`, { cause: err });
    case 'ENOTDIR':
      return new ColdstartError('BAD_INPUT', `${path}: a parent of this path is not a directory`, { cause: err });
    case 'ELOOP':
      return new ColdstartError('BAD_INPUT', `${path}: too many levels of symbolic links (a symlink loop)`, { cause: err, hint: 'Point at the real file or folder.' });
    case 'ENAMETOOLONG':
      return new ColdstartError('BAD_INPUT', `${path}: file name too long`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new ColdstartError('PERMISSION', `${path}: permission denied (${action})`, { cause: err, hint: 'Check the file mode and owner, or choose another location.' });
    case 'EROFS':
      return new ColdstartError('PERMISSION', `${path}: read-only file system`, { cause: err, hint: 'Write to a writable location (e.g. --output).' });
    case 'ENOSPC':
    case 'EDQUOT':
      return new ColdstartError('DISK_FULL', `${path}: no space left on device`, { cause: err, hint: 'Free some space or write to another volume; nothing was left half-written.' });
    case 'EMFILE':
    case 'ENFILE':
      return new ColdstartError('ENV', `${path}: too many open files`, { cause: err, hint: 'Raise the open-file limit (ulimit -n).' });
    case 'EEXIST':
      return new ColdstartError('OUTPUT_EXISTS', `${path}: already exists`, { cause: err, hint: 'Pass --force to overwrite it, or choose another --output.' });
    default:
      return new ColdstartError('ENV', `${path}: ${e?.message ?? String(err)}`, { cause: err });
  }
}
