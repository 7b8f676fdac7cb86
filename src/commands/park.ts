/** `coldstart park` / `unpark`: the GPU half of a snapshot, in place (src/snapshot/park.ts). */
import type { Command } from 'commander';
import { collect, type Runner } from './context.js';
import { hookFlag, hookFlags, pidArg, report } from './snapshot-flags.js';
import { durationFlag } from '../core/flags.js';
import type { SnapshotEngines } from '../snapshot/engines.js';
import { parkOrUnpark } from '../snapshot/park.js';

interface ParkFlags {
  lockTimeout: string;
  hugePages?: boolean;
  timeout: string;
  beforePark?: string;
  beforeParkMethod: string;
  afterUnpark?: string[];
  afterUnparkMethod: string;
  floor?: boolean;
}

export function registerPark(program: Command, run: Runner, engines: SnapshotEngines): void {
  for (const which of ['park', 'unpark'] as const) {
    const cmd = program
      .command(which)
      .description(which === 'park' ? "free a running CUDA process's GPU: lock and checkpoint its GPU memory into host memory (the process stays)" : 'bring a parked process back onto the GPU: restore its GPU memory and unlock it')
      .argument('<pid>', 'process id')
      .option('--lock-timeout <duration>', which === 'park' ? 'wait this long for in-flight GPU work' : 'unused; accepted for symmetry with park', '30');
    if (which === 'park') cmd.option('--huge-pages', 'set transparent huge pages to `always` (system-wide) while the GPU memory moves into host memory, then put back the mode found: park and the later unpark both run faster');
    const hookName = which === 'park' ? '--before-park' : '--after-unpark';
    if (which === 'park') cmd.option(`${hookName} <url>`, 'send this request before the GPU lock (e.g. vLLM /sleep?level=1 or 2: what the server releases itself is not moved by the driver)');
    else cmd.option(`${hookName} <url>`, 'send this request after the unlock (e.g. vLLM /wake_up): the server takes back what it released; repeatable, sent in order; a space and JSON after the URL is its body', collect);
    if (which === 'unpark') cmd.option('--floor', "afterwards, measure this machine's floor for it and compare with the driver's restore: the GPU memory it brought back at pinned H2D");
    cmd.option(`${hookName}-method <method>`, 'GET or POST', 'POST').option('--timeout <duration>', `give up on each ${hookName} request after this long`, '300');
    cmd.action(
      run((ctx, pid: string, f: ParkFlags) => {
        const hooks = which === 'park' ? [hookFlag(hookName, f.beforePark, f.beforeParkMethod)].filter((h) => h !== null) : hookFlags(hookName, f.afterUnpark, f.afterUnparkMethod);
        const o = {
          which,
          pid: pidArg(pid),
          lockTimeoutSeconds: durationFlag('--lock-timeout', f.lockTimeout, { bareSeconds: true }),
          hugePages: !!f.hugePages,
          hooks,
          floor: !!f.floor,
          timeoutSeconds: durationFlag('--timeout', f.timeout, { bareSeconds: true }),
          signal: ctx.signal,
        };
        return report(ctx, null, () => parkOrUnpark(o, engines));
      }),
    );
  }
}
