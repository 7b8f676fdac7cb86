import type { Command } from 'commander';
import { addReportOptions, emitOptions, type Context, type ReportFlags, type Runner } from '../cli/context.js';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { newReport, summarizeRuns } from '../core/report.js';
import { emitReport } from '../core/emit.js';
import { skippedPhase, type PhaseResult } from '../core/phases.js';
import { formatBytes, formatDuration, formatRate } from '../core/format.js';
import { nowSeconds } from '../core/clock.js';
import { convertCheckpoint, parseSize, targetDtype, type ConvertResult } from '../convert/convert.js';
import { relative, resolve } from 'node:path';

interface ConvertFlags extends ReportFlags {
  output?: string;
  dtype?: string;
  shardSize?: string;
  key?: string;
  verify?: boolean;
  force?: boolean;
  fsync?: boolean;
  allowAmplification?: boolean;
}

/**
 * convert's refusals are one line (issue #11): the hint joins the message after "; " instead of a second line
 * (the JSON error document keeps the same text).
 */
function oneLine(e: unknown): unknown {
  if (!(e instanceof ColdstartError) || !e.hint) return e;
  const msg = `${e.message}; ${e.hint.replace(/\.$/, '')}`;
  return new ColdstartError(e.code, msg, { cause: e, details: e.details });
}


/** A redrawn bar on a TTY; plain lines every 5 s otherwise (nothing for quick runs). */
function progress(ctx: Context): { update(done: number, total: number): void; end(): void } {
  const t0 = nowSeconds();
  let lastLine = t0;
  let drawn = false;
  const tty = ctx.out.interactive;
  return {
    update(done, total) {
      const now = nowSeconds();
      const rate = now > t0 ? done / (now - t0) : 0;
      const frac = total > 0 ? done / total : 1;
      if (tty) {
        const width = 30;
        const fill = Math.round(frac * width);
        ctx.out.proc.stderr.write(`\r\u001b[2Kconverting [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%  ${formatBytes(done)} / ${formatBytes(total)}  ${formatRate(rate)}`);
        drawn = true;
      } else if (now - lastLine >= 5 && done < total) {
        lastLine = now;
        ctx.out.progressLine(`converting: ${(frac * 100).toFixed(0)}% (${formatBytes(done)} of ${formatBytes(total)}, ${formatRate(rate)})`);
      }
    },
    end() {
      if (drawn) ctx.out.proc.stderr.write('\r\u001b[2K');
    },
  };
}

function human(r: ConvertResult, ctx: Context): string {
  const s = ctx.out.style;
  const rel = (p: string) => {
    const x = relative(ctx.cwd, p);
    return x && !x.startsWith('..') ? x : p;
  };
  const lines: string[] = [];
  const nfiles = r.files.length;
  lines.push(
    `${s.green('converted')} ${rel(r.input)} → ${rel(r.output)}: ${r.tensors} tensors, ${formatBytes(r.bytes)} in ${nfiles} file${nfiles === 1 ? '' : 's'}${r.key ? ` (weights from key "${r.key}")` : ''}${r.verified ? `, ${s.green('verified')}` : ''}`,
  );
  const t = r.seconds;
  lines.push(
    `  read ${formatDuration(t.read)} · write ${formatDuration(t.write)} (${formatRate(r.throughputBytesPerSecond)}${r.copyFileRange ? ', copy_file_range' : ''})${t.verify !== null ? ` · verify ${formatDuration(t.verify)}` : ''} · total ${formatDuration(t.total)}`,
  );
  if (r.dtype) lines.push(`  ${r.convertedDtype} floating tensor(s) converted to ${r.dtype}`);
  if (r.byteorder === 'big') lines.push('  big-endian checkpoint: data byteswapped to little-endian');
  const dropped = Object.entries(r.droppedAliases);
  if (dropped.length) lines.push(`  shared tensors written once: ${dropped.map(([a, b]) => `${a} → ${b}`).join(', ')} (recorded in __metadata__)`);
  if (nfiles > 1) for (const f of r.files) lines.push(`  ${rel(f.path)}  ${f.tensors} tensors, ${formatBytes(f.bytes)}`);
  if (r.carried.length) lines.push(`  carried over: ${r.carried.join(', ')}`);
  return lines.join('\n');
}

export function registerConvert(program: Command, run: Runner): void {
  const cmd = program
    .command('convert')
    .description('convert PyTorch .bin/.pt checkpoints to safetensors, safely (nothing is executed) and streaming')
    .argument('<input>', 'checkpoint file or Hugging Face model directory')
    .option('-o, --output <path>', 'output file or directory')
    .option('--dtype <dtype>', 'convert floating tensors to f16, bf16 or f32')
    .option('--shard-size <size>', 'maximum shard size, e.g. 5GB')
    .option('--key <key>', 'which entry of a wrapping checkpoint holds the weights')
    .option('--verify', 're-read the output and compare every tensor with the source')
    .option('--force', 'overwrite an existing output')
    .option('--no-fsync', 'do not fsync outputs before renaming them into place (faster, less durable)')
    .option('--allow-amplification', 'write tensors even when stride-0/overlapping views expand them past 2x the stored bytes');
  addReportOptions(cmd).action(
    run(async (ctx, input: string, flags: ConvertFlags) => {
      const dtype = flags.dtype === undefined ? undefined : targetDtype(flags.dtype) ?? undefined;
      if (flags.dtype !== undefined && !dtype) throw invalidArg('--dtype', 'f16, bf16 or f32', flags.dtype);
      const shardSize = flags.shardSize === undefined ? undefined : parseSize(flags.shardSize);
      const emit = emitOptions(ctx, flags, [resolve(ctx.cwd, input)]);
      const bar = progress(ctx);
      const warnings: string[] = [];
      let result: ConvertResult;
      try {
        result = await convertCheckpoint({
          input: resolve(ctx.cwd, input),
          output: flags.output === undefined ? undefined : flags.output.endsWith('/') ? `${resolve(ctx.cwd, flags.output)}/` : resolve(ctx.cwd, flags.output),
          outputName: '--output',
          dtype,
          shardSize,
          key: flags.key,
          verify: !!flags.verify,
          force: !!flags.force,
          fsync: flags.fsync !== false,
          allowAmplification: !!flags.allowAmplification,
          signal: ctx.signal,
          onProgress: (d, t) => bar.update(d, t),
          warn: (m) => warnings.push(m),
        });
      } catch (e) {
        throw oneLine(e);
      } finally {
        bar.end();
      }
      const phase = (name: string, seconds: number, note: string, metrics: PhaseResult['metrics'] = {}): PhaseResult => ({ name, status: 'ok', seconds, note, steps: [], metrics });
      const phases = [
        phase('read', result.seconds.read, `${result.sources.length} checkpoint file(s), structure only`),
        phase('write', result.seconds.write, `${formatBytes(result.bytes)} at ${formatRate(result.throughputBytesPerSecond)}`, { bytes: result.bytes, throughputBytesPerSecond: result.throughputBytesPerSecond }),
        // Without --verify the check is left out by choice: outside the total, never missing from it.
        result.seconds.verify === null ? skippedPhase('verify', 'not requested (--verify)', true) : phase('verify', result.seconds.verify, 'every tensor re-read and compared with the source'),
      ];
      // The total is the conversion's wall clock, as in the human line: what no phase explains is shown as such.
      const explained = result.seconds.read + result.seconds.write + (result.seconds.verify ?? 0);
      phases.push(phase('unexplained', Math.max(0, result.seconds.total - explained), 'planning, renames into place, carried-over files'));
      const report = newReport('convert');
      const sum = summarizeRuns([phases]);
      report.phases = sum.phases;
      report.total = sum.total;
      report.target = { input: result.input, output: result.output };
      report.warnings.push(...warnings);
      const { schema: _schema, ...details } = result;
      report.details = details;
      return emitReport(ctx.out, report, ctx.cwd, { ...emit, human: () => human(result, ctx) });
    }),
  );
}
