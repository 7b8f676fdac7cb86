/**
 * A per-blob lock between coldstart processes: an exclusively created file holding `pid@host`. A lock whose
 * owner process is gone (same host, pid not alive) is stale and taken over, so a killed run never wedges
 * the next one. Python's huggingface_hub locks with flock on `.locks/<repo>/<etag>.lock`; Node has no
 * flock, so ours is a sibling file (`<etag>.coldstart.lock`) and never touches Python's lock file.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { hostname } from 'node:os';
import { fromSystemError } from '../core/errors.js';
import { sleep } from '../core/clock.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function stale(path: string): boolean {
  try {
    const [pidS, host] = readFileSync(path, 'utf8').trim().split('@');
    const pid = Number(pidS);
    if (!Number.isInteger(pid) || pid <= 0) return true;
    return host === hostname() && !alive(pid);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

export interface Lock {
  release(): void;
}

/** Acquires `path`, polling while another live process holds it; `onWait` is told once that we wait. */
export async function acquireLock(path: string, opts: { signal?: AbortSignal; onWait?: () => void; pollMs?: number } = {}): Promise<Lock> {
  mkdirSync(dirname(path), { recursive: true });
  let told = false;
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${process.pid}@${hostname()}\n`);
      closeSync(fd);
      let held = true;
      return {
        release() {
          if (held) rmSync(path, { force: true });
          held = false;
        },
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw fromSystemError(e, path, 'lock');
    }
    if (stale(path)) {
      rmSync(path, { force: true });
      continue;
    }
    if (!told) {
      opts.onWait?.();
      told = true;
    }
    await sleep(opts.pollMs ?? 200, opts.signal);
  }
}
