import { lstatSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ColdstartError, fromSystemError } from './errors.js';
import { readInputText } from './files.js';
import { budgetsFromConfig, type Budgets } from './budgets.js';

export const CONFIG_FILE = 'coldstart.config.json';

/** A config is a few lines of JSON: anything larger is refused before it is read. */
export const CONFIG_MAX_BYTES = 1 << 20;

export interface ColdstartConfig {
  path: string | null;
  budgets: Budgets;
  raw: Record<string, unknown>;
}

/**
 * Finds coldstart.config.json by walking up from `cwd` to the filesystem root. Any entry of that name counts
 * (a FIFO, a folder, a dangling or looping symlink too): loadConfig then refuses it by name instead of skipping
 * it silently or blocking on it. A folder that cannot be searched is passed over, as before.
 */
export function findConfig(cwd: string): string | null {
  let dir = resolve(cwd);
  for (;;) {
    const p = join(dir, CONFIG_FILE);
    let found = false;
    try {
      found = lstatSync(p, { throwIfNoEntry: false }) !== undefined;
    } catch {
      // EACCES on a parent: nothing to see there.
    }
    if (found) return p;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export function loadConfig(cwd: string, explicitPath?: string): ColdstartConfig {
  const path = explicitPath ? resolve(cwd, explicitPath) : findConfig(cwd);
  if (!path) return { path: null, budgets: {}, raw: {} };
  let text: string;
  try {
    // Regular files only, size-capped before reading: `--config /dev/zero` or a FIFO named
    // coldstart.config.json in a parent folder is refused at once instead of filling memory or blocking.
    text = readInputText(path, 'config', CONFIG_MAX_BYTES);
  } catch (e) {
    const err = fromSystemError(e, path, 'read');
    if (err.exitCode !== 2) throw err;
    const how = explicitPath ? 'the --config file' : `found by walking up from ${resolve(cwd)}`;
    throw new ColdstartError('BAD_CONFIG', `${err.message} (${how})`, {
      cause: e,
      hint: explicitPath ? 'Pass a coldstart.config.json that is a regular JSON file.' : `Replace or remove ${path}, or pass --config FILE.`,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ColdstartError('BAD_CONFIG', `${path}: not valid JSON (${(e as Error).message})`, { hint: 'Fix the file or remove it.' });
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ColdstartError('BAD_CONFIG', `${path}: expected a JSON object`);
  }
  const obj = raw as Record<string, unknown>;
  return { path, budgets: budgetsFromConfig(obj.budgets, path), raw: obj };
}
