/** Processes as the tests see them, through src/platform/procfs.ts's one /proc/<pid>/stat parser. */
import { existsSync, readFileSync } from 'node:fs';
import { readProcStat } from '../../src/platform/procfs.js';

const hasProc = existsSync('/proc/self/stat');

/** Alive and not a zombie (a dead process not yet reaped keeps its /proc entry); without /proc, signal 0. */
export function running(pid: number): boolean {
  if (hasProc) {
    const s = readProcStat(pid);
    return s !== null && !/^[ZX]$/.test(s.state);
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL, then wait up to `waitMs` for its /proc entry to go (a pid reused too early would confuse a later test). */
export async function killAndWait(pid: number, waitMs: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let t = 0; t < waitMs && existsSync(`/proc/${pid}`); t += 25) await new Promise((r) => setTimeout(r, 25));
}

/** Waits up to `ms` for every pid to stop running; the ones still running. */
export async function gone(pids: number[], ms = 5000): Promise<number[]> {
  const until = Date.now() + ms;
  while (Date.now() < until && pids.some(running)) await new Promise((r) => setTimeout(r, 25));
  return pids.filter(running);
}

/** The "server grandchild" pids test/fixtures-servers/tree-server.mjs writes once both run. */
export async function pidsFrom(file: string, ms = 10_000): Promise<[number, number]> {
  const until = Date.now() + ms;
  let seen: string | null = null;
  while (Date.now() < until) {
    if (existsSync(file)) {
      seen = readFileSync(file, 'utf8');
      const p = seen.trim().split(' ').map(Number);
      if (p.length === 2 && p.every((x) => x > 0)) return p as [number, number];
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(seen === null ? `no pid file ${file}` : `pid file ${file} holds ${JSON.stringify(seen)}, not two pids`);
}
