/**
 * How coldstart runs its watchdog (./shim.cjs, a real file shipped beside this one in dist/server/) and reads what
 * it reports: the command line that starts it (through ./subreaper.py when python3 is on PATH), its status
 * protocol on fd 3, and its process-tree tracker (`Tree`), loaded as a module for trees coldstart did not start.
 */
import { accessSync, existsSync, constants as fsConstants } from 'node:fs';
import { ColdstartError } from '../core/errors.js';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { LineSplitter } from './log-lines.js';

type Env = Record<string, string | undefined>;

/** The watchdog's source file and the subreaper launcher, beside this module (src/server/ or dist/server/). */
export const SHIM_PATH = fileURLToPath(new URL('./shim.cjs', import.meta.url));
export const SUBREAPER_PATH = fileURLToPath(new URL('./subreaper.py', import.meta.url));

/** What Tree.stop reports (shim.cjs). */
export interface TreeStopped {
  signal: 'SIGTERM' | 'SIGKILL';
  seconds: number;
  pids: number[];
  sigkilled: number[];
  survivors: number[];
}

/** shim.cjs's process-tree tracker: every descendant of `root` ever seen, by pid and start time. */
export interface Tree {
  readonly root: number;
  add(pid: number): void;
  scan(): boolean;
  alive(pid: number): boolean;
  pids(): number[];
  stop(o: { graceMs: number; group?: number; always?: number[]; settled?: () => boolean }): Promise<TreeStopped>;
}

let shimModule: { Tree: new (root: number) => Tree } | undefined;

/** A tracker for the tree below `root` (the shim's own code, loaded as a module). */
export function newTree(root: number): Tree {
  shimModule ??= createRequire(import.meta.url)(SHIM_PATH) as { Tree: new (root: number) => Tree };
  return new shimModule.Tree(root);
}

function findOnPath(name: string, env: Env): string | null {
  if (process.platform !== 'linux') return null;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

/**
 * The program and arguments that start the watchdog for `command`: `node shim.cjs GRACE CMD…`, through
 * `python3 subreaper.py` (a child subreaper) when python3 is on PATH and COLDSTART_NO_SUBREAPER is unset.
 */
export function watchdogCommand(graceSeconds: number, command: readonly string[], env: Env): [string, string[]] {
  if (!existsSync(SHIM_PATH)) {
    throw new ColdstartError('INTERNAL', `the server watchdog ${SHIM_PATH} is missing from this installation`, { hint: 'Reinstall coldstart; in a checkout, build with `npm run build` (it copies src/server/shim.cjs and subreaper.py into dist/).' });
  }
  const shimArgs = [SHIM_PATH, String(graceSeconds), ...command];
  const python = env.COLDSTART_NO_SUBREAPER ? null : findOnPath('python3', env);
  // -I: isolated (no PYTHON* variables, no script folder or user site on sys.path): only the standard library runs.
  return python ? [python, ['-I', SUBREAPER_PATH, process.execPath, ...shimArgs]] : [process.execPath, shimArgs];
}

/** What the watchdog has reported so far on its status pipe. */
export interface ShimState {
  subreaper: boolean;
  serverPid: number | null;
  serverSpawnHr: bigint | null;
  exit: { code: number | null; signal: string | null } | null;
  spawnError: string | null;
  pids: number[];
  stopped: TreeStopped | null;
}

export function newShimState(): ShimState {
  return { subreaper: false, serverPid: null, serverSpawnHr: null, exit: null, spawnError: null, pids: [], stopped: null };
}

/** Reads the watchdog's status lines (one JSON object each) into `state`; `on` hears each event after it is applied. */
export function readShimStatus(stream: Readable, state: ShimState, on: (event: string) => void): void {
  const split = new LineSplitter(1 << 20);
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    for (const line of split.push(d)) {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (o.event === 'spawned') {
        state.serverPid = o.pid as number;
        state.serverSpawnHr = BigInt(o.hr as string);
      } else if (o.event === 'exit') state.exit = { code: (o.code as number | null) ?? null, signal: (o.signal as string | null) ?? null };
      else if (o.event === 'error') state.spawnError = String(o.message);
      else if (o.event === 'pids') state.pids = o.pids as number[];
      else if (o.event === 'subreaper') state.subreaper = o.ok === true;
      else if (o.event === 'stopped') state.stopped = { signal: o.signal as 'SIGTERM' | 'SIGKILL', seconds: o.seconds as number, pids: o.pids as number[], sigkilled: o.sigkilled as number[], survivors: o.survivors as number[] };
      on(String(o.event));
    }
  });
  stream.on('error', () => undefined);
}
