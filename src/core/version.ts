import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The installed package's root folder (where package.json, scripts/ and docs/ are): messages name files in it by absolute path. */
export const PACKAGE_ROOT: string = fileURLToPath(new URL('../../', import.meta.url)).replace(/\/$/, '');

/** A file the package ships (scripts/ci-criu.sh …), as an absolute path a message can name. */
export function shippedPath(rel: string): string {
  return `${PACKAGE_ROOT}/${rel}`;
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
