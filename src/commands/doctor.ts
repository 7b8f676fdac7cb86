import type { Command } from 'commander';
import type { Runner } from './context.js';
import { ExitCode } from '../core/errors.js';
import { gatherDoctor } from '../doctor/doctor.js';
import { doctorText } from '../doctor/render.js';
import { snapshotDoctor } from '../snapshot/doctor.js';
import { defaultSnapshotEngines } from '../snapshot/engines.js';

export function registerDoctor(program: Command, run: Runner): void {
  program
    .command('doctor')
    .description('check this machine: Node, native addon, CUDA driver and GPUs (PCIe link), NVML, disks, HF cache, Python peers')
    .action(
      run(async (ctx) => {
        const spin = await ctx.out.spinner('probing CUDA, disks and Python…');
        const report = await gatherDoctor(ctx.env, ctx.cwd, (env) => snapshotDoctor(env, defaultSnapshotEngines)).finally(() => spin.stop());
        if (ctx.out.json) ctx.out.writeJson(report);
        else ctx.out.print(doctorText(report, ctx.out.style));
        return ExitCode.OK;
      }),
    );
}
