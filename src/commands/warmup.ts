import type { Command } from 'commander';
import { resolve } from 'node:path';
import { durationFlag, intFlag } from '../core/flags.js';
import { addReportOptions, addTelemetryOptions, emitOptions, localInputs, type Context, type ReportFlags, type Runner } from '../cli/context.js';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { runPhase, publicPhase } from '../core/phases.js';
import { newReport, summarizeRuns } from '../core/report.js';
import { emitReport } from '../core/emit.js';
import { formatDuration } from '../core/format.js';
import { statsLine } from '../core/reporters/human.js';
import { nowSeconds } from '../core/clock.js';
import { parseShapeFlags } from '../warmup/dummy.js';
import { HTTP_APIS, type HttpApi } from '../server/api.js';
import type { WarmupResult } from '../warmup/warmup.js';
import { COMPILE_MODES, type CompileMode } from '../warmup/compile/torch.js';
import { compileWarmupResult, compileLines } from '../warmup/compile/report.js';

interface WarmupFlags extends ReportFlags {
  url?: string;
  framework?: string;
  runs: string;
  shape?: string[];
  cacheDir?: string;
  cache: boolean;
  compare?: boolean;
  provider: string;
  wait?: boolean;
  timeout?: string;
  api?: string;
  header?: string[];
  maxTokens?: string;
  device: string;
  compile?: boolean;
  mode: string;
  persist?: string;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

function parseHeaders(specs: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of specs) {
    const i = h.indexOf(':');
    if (i <= 0) throw invalidArg('--header', '"Name: value"', h);
    out[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  return out;
}

function oneOf<T extends string>(flag: string, v: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw invalidArg(flag, allowed.join(', '), v);
}

function opsetText(opsets: Record<string, number>): string {
  const main = opsets[''] ?? opsets['ai.onnx'];
  const others = Object.keys(opsets).filter((k) => k !== '' && k !== 'ai.onnx').length;
  return `${main === undefined ? 'no ai.onnx opset' : `opset ${main}`}${others ? ` (+${others} other domain${others > 1 ? 's' : ''})` : ''}`;
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(a / b >= 10 ? 0 : 1)}×` : '—';
}

/** The human lines under the phase table: first vs steady, cold vs cached, what was fed and where things went. */
function extraLines(r: WarmupResult, ctx: Context): string[] {
  const s = ctx.out.style;
  const d = r.details;
  const lines: string[] = [];
  if (r.steady) lines.push(`${s.bold('first vs steady')}  first ${formatDuration(r.firstSeconds)} · steady ${statsLine(r.steady)} → first is ${ratio(r.firstSeconds, r.steady.mean)} steady`);
  else lines.push(`${s.bold('first')}  ${formatDuration(r.firstSeconds)} (no steady-state runs: --runs 0)`);
  if (r.cached) {
    const when = d.coldMeasured === 'recorded' ? ` (cold recorded ${String(d.coldRecordedAt)}; --compare re-measures it)` : ' (both measured in this run)';
    lines.push(
      `${s.bold('session create')}  cold ${formatDuration(r.cached.coldSessionSeconds)} · cached graph ${formatDuration(r.cached.cachedSessionSeconds)} → ${ratio(r.cached.coldSessionSeconds, r.cached.cachedSessionSeconds)} faster, saves ${formatDuration(r.cached.coldSessionSeconds - r.cached.cachedSessionSeconds)}${when}`,
    );
  }
  if (r.backend === 'onnx') {
    const inputs = (d.inputs as Array<{ name: string; type: string; shape: number[]; source: string }>).map((i) => `${i.name} ${i.type}[${i.shape.join('x')}] (${i.source})`);
    lines.push(`${s.bold('inputs')}  ${inputs.join(', ')}`);
    const ort = d.ort as { version: string };
    lines.push(`${s.bold('runtime')}  onnxruntime-node ${ort.version}, ${String(d.provider)} execution provider; ${opsetText(d.opsets as Record<string, number>)}`);
    const c = d.cache as { enabled: boolean; hit?: boolean; written?: string | null; file?: string };
    if (c.enabled) lines.push(`${s.bold('cache')}  ${c.hit ? `hit: ${c.file}` : c.written ? `written: ${c.written}` : 'not written'}`);
  }
  if (r.backend === 'http') {
    lines.push(`${s.bold('server')}  ${String(d.api)} API at ${String(d.url)}${d.model ? `, model ${String(d.model)}` : ''}, ${String(d.endpoint)}${d.streaming ? ' (streamed)' : ''}`);
    const st = d.steadyTtft as { mean: number; stddev: number; min: number; max: number; n: number } | null;
    if (typeof d.firstTtftSeconds === 'number') lines.push(`${s.bold('ttft')}  first request ${formatDuration(d.firstTtftSeconds)}${st ? ` · steady ${statsLine(st)}` : ''}`);
  }
  if (r.backend === 'framework' && d.compile) lines.push(...compileLines(d.compile as Parameters<typeof compileLines>[0], s));
  else if (r.backend === 'framework') {
    lines.push(`${s.bold('python')}  ${String(d.python)}: torch ${String(d.torch)}${d.transformers ? `, transformers ${String(d.transformers)}` : ''}; ${String(d.class)} on ${String(d.device)}`);
  }
  for (const n of (d.notes as string[] | undefined) ?? []) lines.push(s.dim(`note: ${n}`));
  return lines;
}

export function registerWarmup(program: Command, run: Runner): void {
  addTelemetryOptions(addReportOptions(
    program
      .command('warmup')
      .description('absorb first-inference cost before traffic (ONNX, HTTP servers, Python frameworks) and cache what can be cached')
      .argument('[model]', 'ONNX model file (or dir); with --framework a model dir/file; with --url the server-side model name')
      .option('--url <url>', 'warm up a running or starting HTTP inference server (OpenAI-compatible, TGI, KServe v2/Triton, Ollama)')
      .option('--framework <name>', 'torch or transformers, through Python ($COLDSTART_PYTHON)')
      .option('--runs <n>', 'steady-state runs after the first', '5')
      .option('--shape <name=dims>', 'input shape (input_ids=1x128) or symbolic dimension (sequence=128); repeatable', collect)
      .option('--cache-dir <dir>', 'where optimised ONNX graphs are cached (default $XDG_CACHE_HOME/coldstart/ort)')
      .option('--no-cache', 'ONNX: neither read nor write the optimised-graph cache')
      .option('--compare', 'ONNX / --compile: on a cache hit, also measure the cold path (session creation / compile) in this run')
      .option('--provider <ep>', 'ONNX execution provider: auto, cpu or cuda', 'auto')
      .option('--wait', 'HTTP: block until the server is up and warm (start-up gate: exit 0 when warm, 3 on timeout)')
      .option('--timeout <duration>', 'deadline for readiness + requests or the Python process (default 120s; 600s with --wait)')
      .option('--api <name>', `HTTP: skip detection (${HTTP_APIS.join(', ')})`)
      .option('--header <h>', "HTTP: extra request header, e.g. 'Authorization: Bearer TOKEN'; repeatable", collect)
      .option('--max-tokens <n>', 'tokens to generate per dummy request (HTTP, transformers)', '8')
      .option('--device <d>', 'framework: auto, cpu or cuda', 'auto')
      .option('--compile', 'framework torch/transformers: run the first forward under torch.compile (Inductor)')
      .option('--mode <mode>', `--compile: ${COMPILE_MODES.join(', ')}`, 'default')
      .option('--persist <dir>', '--compile: keep Inductor/Triton caches and torch cache artefacts in DIR, fingerprinted; time cold vs from the cache, each in a fresh process'),
  )).action(
    run(async (ctx: Context, model: string | undefined, flags: WarmupFlags) => {
      const runs = intFlag('--runs', flags.runs, 0, 100_000);
      const maxTokens = intFlag('--max-tokens', flags.maxTokens ?? '8', 1, 4096);
      const framework = flags.framework === undefined ? undefined : oneOf('--framework', flags.framework, ['torch', 'transformers'] as const);
      const provider = oneOf('--provider', flags.provider, ['auto', 'cpu', 'cuda'] as const);
      const device = oneOf('--device', flags.device, ['auto', 'cpu', 'cuda'] as const);
      const api = flags.api === undefined ? undefined : oneOf<HttpApi>('--api', flags.api, HTTP_APIS);
      if (flags.wait && !flags.url) throw new ColdstartError('USAGE', '--wait is for --url (waiting for a server to come up)');
      if (!model && !flags.url) throw new ColdstartError('USAGE', 'nothing to warm up: pass an ONNX model, a model with --framework, or --url http://host:port', { hint: 'Examples: coldstart warmup model.onnx · coldstart warmup --url http://127.0.0.1:8000 --wait' });
      const eo = emitOptions(ctx, flags, localInputs(ctx, model));
      const shapes = parseShapeFlags(flags.shape ?? []);
      const timeoutSeconds = flags.timeout === undefined ? undefined : durationFlag('--timeout', flags.timeout, { bareSeconds: true });
      const mode = oneOf<CompileMode>('--mode', flags.mode, COMPILE_MODES);
      if (!flags.compile && (flags.persist !== undefined || flags.mode !== 'default')) throw new ColdstartError('USAGE', `${flags.persist !== undefined ? '--persist' : '--mode'} is for --compile (torch.compile's caches)`, { hint: 'Add --framework torch --compile.' });
      if (flags.compile && !framework) throw new ColdstartError('USAGE', '--compile needs --framework torch (or transformers): it runs torch.compile in Python');
      if (flags.compile && flags.url) throw new ColdstartError('USAGE', '--compile and --url cannot be combined: a server compiles with its own settings (see `coldstart cache artifacts ls`)');

      const spin = await ctx.out.spinner('warming up…');
      let lastLine = 0;
      const progress = (text: string) => {
        if (ctx.out.interactive) return spin.update(text);
        if (flags.wait && nowSeconds() - lastLine >= 5) {
          lastLine = nowSeconds();
          ctx.out.progressLine(text);
        }
      };
      const { runWarmup, recordWarmupPhase } = await import('../warmup/warmup.js');
      let result: WarmupResult;
      try {
        if (flags.compile) {
          const { warmupCompile } = await import('../warmup/compile/torch.js');
          const cw = await warmupCompile({
            model: resolve(ctx.cwd, model!),
            mode,
            device,
            shapes,
            runs,
            persistDir: flags.persist !== undefined ? resolve(ctx.cwd, flags.persist) : undefined,
            compare: flags.compare,
            timeoutSeconds: timeoutSeconds ?? 600,
            env: ctx.env,
            signal: ctx.signal,
            progress,
          });
          result = compileWarmupResult(resolve(ctx.cwd, model!), cw);
        } else {
          result = await runWarmup({
          // Paths are relative to the command's working directory (the server-side model name is not a path).
          model: model && !flags.url ? resolve(ctx.cwd, model) : model,
          url: flags.url,
          framework,
          runs,
          shapes,
          cacheDir: flags.cacheDir ? resolve(ctx.cwd, flags.cacheDir) : undefined,
          cache: flags.cache,
          compare: flags.compare,
          provider,
          wait: flags.wait,
          timeoutSeconds,
          api,
          headers: parseHeaders(flags.header),
          maxTokens,
          device,
          env: ctx.env,
          signal: ctx.signal,
          progress,
        });
        }
      } finally {
        spin.stop();
      }
      const phase = await runPhase('warmup', (h) => recordWarmupPhase(h, result));
      const report = newReport('warmup', 'coldstart/warmup@1');
      const sum = summarizeRuns([[publicPhase(phase)]]);
      report.phases = sum.phases;
      report.total = sum.total;
      report.warnings.push(...sum.warnings);
      report.target = { backend: result.backend, target: result.target };
      report.details = { ...result };
      return emitReport(ctx.out, report, ctx.cwd, { ...eo, extraHuman: extraLines(result, ctx) });
    }),
  );
}
