import { homedir } from 'node:os';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { ColdstartError } from '../core/errors.js';
import { readInputText } from '../core/files.js';

type Env = Record<string, string | undefined>;

/** Mirrors huggingface_hub's constants: HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE. */
export function hfHome(env: Env): string {
  if (env.HF_HOME) return env.HF_HOME;
  const xdg = env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(xdg, 'huggingface');
}

export function hubCacheDir(env: Env): string {
  return env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome(env), 'hub');
}

export function hfEndpoint(env: Env): string {
  return (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
}

const TRUE = new Set(['1', 'on', 'yes', 'true']);
export function hfOffline(env: Env): boolean {
  return TRUE.has((env.HF_HUB_OFFLINE ?? '').toLowerCase());
}

/** HF_TOKEN, else the token file at $HF_TOKEN_PATH or $HF_HOME/token; undefined when none. */
export function hfToken(env: Env): string | undefined {
  const t = env.HF_TOKEN?.trim();
  if (t) return t;
  const path = env.HF_TOKEN_PATH || join(hfHome(env), 'token');
  if (existsSync(path)) {
    // A token is a few dozen bytes: a FIFO or a huge file there is refused, never read (core/files.ts).
    const s = readInputText(path, 'Hugging Face token', 64 << 10).trim();
    if (s) return s;
  }
  return undefined;
}

/**
 * huggingface_hub's HF_HUB_DOWNLOAD_TIMEOUT (file transfers) and HF_HUB_ETAG_TIMEOUT (metadata calls), in
 * seconds, as milliseconds; `fallbackMs` when unset. Each is the connect and the idle deadline of every request.
 */
export function hfTimeoutMs(env: Env, name: 'HF_HUB_DOWNLOAD_TIMEOUT' | 'HF_HUB_ETAG_TIMEOUT', fallbackMs: number): number {
  const v = env[name]?.trim();
  if (!v) return fallbackMs;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 86_400) {
    throw new ColdstartError('BAD_CONFIG', `${name}: expected a number of seconds (0 < n ≤ 86400), got ${JSON.stringify(v)}`, { hint: `Set ${name} to seconds, e.g. ${name}=30, or unset it.` });
  }
  return Math.round(n * 1000);
}
