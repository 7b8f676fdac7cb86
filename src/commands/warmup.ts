import type { Command } from 'commander';
import { resolve } from 'node:path';
import { choiceFlag, durationFlag, httpUrlFlag, intFlag } from '../core/flags.js';
import { addReportOptions, addTelemetryOptions, collect, emitOptions, localInputs, type Context, type ReportFlags, type Runner } from './context.js';
import { ColdstartError, invalidArg } from '../core/errors.js';
import { emitReport } from '../core/emit.js';
import { nowSeconds } from '../core/clock.js';
import { parseShapeFlags } from '../warmup/dummy.js';
import { HTTP_APIS } from '../server/api.js';
import type { WarmupOptions } from '../warmup/warmup.js';
import { COMPILE_MODES } from '../warmup/compile/torch.js';

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

function parseHeaders(specs: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of specs) {
    const i = h.indexOf(':');
    if (i <= 0) throw invalidArg('--header', '"Name: value"', h);
    out[h.slice(0, i).trim()] = h.slice(i + 1).trim();
  }
  return out;
}

/**
 * Every flag of `coldstart warmup`, parsed once into the warmup's typed options (a bad one exits 2 before anything runs).
 * In the order every command keeps: what to work on (as `requireServerCommand` for a server command), then each flag's
 * own value, then how the flags go together, so `--runs x` is named as such beside a flag that does not fit.
 */
function warmupOptions(ctx: Context, model: string | undefined, f: WarmupFlags): WarmupOptions {
  if (!model && !f.url) throw new ColdstartError('USAGE', 'nothing to warm up: pass an ONNX model, a model with --framework, or --url http://host:port', { hint: 'Examples: coldstart warmup model.onnx · coldstart warmup --url http://127.0.0.1:8000 --wait' });
  const url = f.url === undefined ? undefined : httpUrlFlag('--url', f.url);
  const framework = f.framework === undefined ? undefined : choiceFlag('--framework', f.framework, ['torch', 'transformers'] as const);
  const runs = intFlag('--runs', f.runs, 0, 100_000);
  const shapes = parseShapeFlags(f.shape ?? []);
  const provider = choiceFlag('--provider', f.provider, ['auto', 'cpu', 'cuda'] as const);
  const timeoutSeconds = f.timeout === undefined ? undefined : durationFlag('--timeout', f.timeout, { bareSeconds: true });
  const api = f.api === undefined ? undefined : choiceFlag('--api', f.api, HTTP_APIS);
  const headers = parseHeaders(f.header);
  const maxTokens = intFlag('--max-tokens', f.maxTokens ?? '8', 1, 4096);
  const device = choiceFlag('--device', f.device, ['auto', 'cpu', 'cuda'] as const);
  const mode = choiceFlag('--mode', f.mode, COMPILE_MODES);
  if (f.wait && !url) throw new ColdstartError('USAGE', '--wait is for --url (waiting for a server to come up)');
  if (!f.compile && (f.persist !== undefined || f.mode !== 'default')) throw new ColdstartError('USAGE', `${f.persist !== undefined ? '--persist' : '--mode'} is for --compile (torch.compile's caches)`, { hint: 'Add --framework torch --compile.' });
  if (f.compile && !framework) throw new ColdstartError('USAGE', '--compile needs --framework torch (or transformers): it runs torch.compile in Python');
  if (url && framework) throw new ColdstartError('USAGE', '--url and --framework cannot be combined: warm a server, or load a model in Python');
  if (f.compile && url) throw new ColdstartError('USAGE', '--compile and --url cannot be combined: a server compiles with its own settings (see `coldstart cache artifacts ls`)');
  return {
    // Paths are relative to the command's working directory (the server-side model name is not a path).
    model: model && !url ? resolve(ctx.cwd, model) : model,
    url,
    framework,
    runs,
    shapes,
    cacheDir: f.cacheDir ? resolve(ctx.cwd, f.cacheDir) : undefined,
    cache: f.cache,
    compare: f.compare,
    provider,
    wait: f.wait,
    timeoutSeconds,
    api,
    headers,
    maxTokens,
    device,
    ...(f.compile ? { compile: { mode, persistDir: f.persist !== undefined ? resolve(ctx.cwd, f.persist) : undefined } } : {}),
    env: ctx.env,
    signal: ctx.signal,
  };
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
      .option('--provider <provider>', 'ONNX execution provider: auto, cpu or cuda', 'auto')
      .option('--wait', 'HTTP: block until the server is up and warm (start-up gate: exit 0 when warm, 3 on timeout)')
      .option('--timeout <duration>', 'deadline for readiness + requests or the Python process (default 120s; 600s with --wait)')
      .option('--api <name>', `HTTP: skip detection (${HTTP_APIS.join(', ')})`)
      .option('--header <header>', "HTTP: extra request header, e.g. 'Authorization: Bearer TOKEN'; repeatable", collect)
      .option('--max-tokens <n>', 'tokens to generate per dummy request (HTTP, transformers)', '8')
      .option('--device <device>', 'framework: auto, cpu or cuda', 'auto')
      .option('--compile', 'framework torch/transformers: run the first forward under torch.compile (Inductor)')
      .option('--mode <mode>', `--compile: ${COMPILE_MODES.join(', ')}`, 'default')
      .option('--persist <dir>', '--compile: keep Inductor/Triton caches and torch cache artefacts in DIR, fingerprinted; time cold vs from the cache, each in a fresh process'),
  )).action(
    run(async (ctx: Context, model: string | undefined, flags: WarmupFlags) => {
      const opts = warmupOptions(ctx, model, flags);
      const eo = emitOptions(ctx, flags, localInputs(ctx, model));
      // A spinner on a TTY; a start-up gate (--wait) in a log says how it is going every 5 s.
      const spin = await ctx.out.spinner('warming up…');
      let lastLine = 0;
      const progress = (text: string) => {
        if (ctx.out.interactive) return spin.update(text);
        if (opts.wait && nowSeconds() - lastLine >= 5) {
          lastLine = nowSeconds();
          ctx.out.progressLine(text);
        }
      };
      const { runWarmup } = await import('../warmup/warmup.js');
      const { warmupReport, warmupLines } = await import('../warmup/report.js');
      const result = await runWarmup({ ...opts, progress }).finally(() => spin.stop());
      return emitReport(ctx.out, await warmupReport(result), ctx.cwd, { ...eo, extraHuman: warmupLines(result, ctx.out.style) });
    }),
  );
}
