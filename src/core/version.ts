import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The installed package's root folder (where package.json, scripts/ and docs/ are): messages name files in it by absolute path. */
export const PACKAGE_ROOT: string = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

/** A file the package ships (scripts/ci-criu.sh …), as an absolute path a message can name. */
export function shippedPath(rel: string): string {
  return `${PACKAGE_ROOT}/${rel}`;
}

/**
 * A worker module, compiled: `rel` is its path under dist/ ("hub/worker.js"). Workers always run the JavaScript the
 * package ships — from an install that is the file beside its caller, and under vitest (src/ run as TypeScript) the
 * build in dist/, so the tests run the code that ships; a missing build says so, naming `what`.
 */
export function compiledWorker(rel: string, what: string): URL {
  const url = pathToFileURL(`${PACKAGE_ROOT}/dist/${rel}`);
  if (!existsSync(url)) throw new Error(`${fileURLToPath(url)} is missing: build with \`npx tsc -p tsconfig.json\` first (${what} runs compiled)`);
  return url;
}

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export const version: string = readVersion();

/**
 * Whether a dotted version (a kernel release `6.18.44-fc-v1272-gpu`, CRIU's `4.2.1`, Node's `20.11.0`) is at least
 * `major.minor`, compared as numbers; null when it does not start with a number (a version nobody could read).
 */
export function versionAtLeast(text: string, major: number, minor = 0): boolean | null {
  const m = /^v?(\d+)(?:\.(\d+))?/.exec(text.trim());
  if (!m) return null;
  const [maj, min] = [Number(m[1]), Number(m[2] ?? 0)];
  return maj > major || (maj === major && min >= minor);
}
