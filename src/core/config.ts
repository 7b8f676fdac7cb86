import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ColdstartError } from './errors.js';
import { budgetsFromConfig, type Budgets } from './budgets.js';

export const CONFIG_FILE = 'coldstart.config.json';

export interface ColdstartConfig {
  path: string | null;
  budgets: Budgets;
  raw: Record<string, unknown>;
}

/** Finds coldstart.config.json by walking up from `cwd` to the filesystem root. */
export function findConfig(cwd: string): string | null {
  let dir = resolve(cwd);
  for (;;) {
    const p = join(dir, CONFIG_FILE);
    if (existsSync(p)) return p;
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
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ColdstartError('BAD_CONFIG', `${path}: cannot read config (${(e as Error).message})`);
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
