import { homedir } from 'node:os';
import { join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';

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
    const s = readFileSync(path, 'utf8').trim();
    if (s) return s;
  }
  return undefined;
}
