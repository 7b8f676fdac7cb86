/**
 * `coldstart cache artifacts ls|verify|rm`: the compile/JIT caches on a (persistent) volume — coldstart's own
 * fingerprinted torch.compile entries and the caches vLLM, Triton, Inductor, FlashInfer, DeepGEMM, TensorRT(-LLM)
 * and ONNX Runtime leave — where each lives, how big, what key it was built for; verified; pruned.
 * Attached to the `cache` command by registerCacheArtifacts (src/cli/main.ts wires it after registerCache).
 */
import type { Command } from 'commander';
import type { Runner, Context } from './context.js';
import { ExitCode } from '../core/errors.js';
import { formatBytes } from '../core/format.js';
import { defaultArtifactRoots } from '../warmup/compile/adopt.js';
import { artifactRoots, listArtifacts, removeArtifact, verifyArtifacts } from '../warmup/compile/artifacts.js';

const SCHEMA = 'coldstart/cache-artifacts@1';

function table(ctx: Context, rows: string[][]): void {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) ctx.out.print(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  '));
}

async function runLs(ctx: Context, dirs: string[]): Promise<number> {
  const { roots, explicit } = artifactRoots(dirs, ctx.cwd, ctx.env);
  const arts = listArtifacts(roots);
  const totalBytes = arts.reduce((a, x) => a + x.bytes, 0);
  if (ctx.out.json) {
    ctx.out.writeJson({ schema: SCHEMA, action: 'ls', roots, artifacts: arts, totalBytes });
    return ExitCode.OK;
  }
  if (!arts.length) {
    ctx.out.print(explicit ? `no compile artefacts under ${roots.join(', ')}` : `no compile artefacts in the default locations (${defaultArtifactRoots(ctx.env).join(', ')})`);
    return ExitCode.OK;
  }
  table(ctx, [['engine', 'size', 'key', 'path', 'built for'], ...arts.map((a) => [a.engine, formatBytes(a.bytes), a.key, a.path, a.builtFor])]);
  ctx.out.print(`${arts.length} artefact(s), ${formatBytes(totalBytes)}`);
  return ExitCode.OK;
}

async function runVerify(ctx: Context, dirs: string[]): Promise<number> {
  const { roots } = artifactRoots(dirs, ctx.cwd, ctx.env);
  const results = verifyArtifacts(roots);
  const bad = results.filter((r) => r.check.ok === false);
  if (ctx.out.json) ctx.out.writeJson({ schema: SCHEMA, action: 'verify', roots, artifacts: results, failed: bad.length });
  else {
    for (const r of results) {
      const state = r.check.ok === true ? 'ok' : r.check.ok === false ? 'FAILED' : 'not checkable';
      ctx.out.print(`${state.padEnd(13)} ${r.engine.padEnd(12)} ${r.path}  (${r.check.method})`);
      for (const p of r.check.problems) ctx.out.print(`              ${p}`);
    }
    ctx.out.print(`${results.length} artefact(s): ${results.filter((r) => r.check.ok === true).length} ok, ${bad.length} failed, ${results.filter((r) => r.check.ok === null).length} with nothing to check against`);
  }
  return bad.length ? ExitCode.BUDGET : ExitCode.OK;
}

async function runRm(ctx: Context, target: string): Promise<number> {
  const a = removeArtifact(target, ctx.cwd);
  if (ctx.out.json) ctx.out.writeJson({ schema: SCHEMA, action: 'rm', removed: a });
  else ctx.out.print(`removed ${a.engine} artefact ${a.path} (${formatBytes(a.bytes)} freed)`);
  return ExitCode.OK;
}

/** Attaches `artifacts ls|verify|rm` to the `cache` command (registered before this is called). */
export function registerCacheArtifacts(program: Command, run: Runner): void {
  const cache = program.commands.find((c) => c.name() === 'cache');
  if (!cache) throw new Error('registerCacheArtifacts: the cache command must be registered first');
  const art = cache.command('artifacts').description('compile/JIT caches on disk (torch.compile, vLLM, Triton, Inductor, FlashInfer, DeepGEMM, TensorRT-LLM, ORT): ls, verify, rm');
  art
    .command('ls')
    .description('list compile artefacts: engine, size, the key it was built for, path (default: each engine\'s own cache location)')
    .argument('[dirs...]', 'directories to scan (e.g. a persistent volume); default: $VLLM_CACHE_ROOT, $TRITON_CACHE_DIR, $TORCHINDUCTOR_CACHE_DIR, FlashInfer, DeepGEMM, coldstart')
    .action(run(async (ctx, dirs: string[]) => runLs(ctx, dirs)));
  art
    .command('verify')
    .description('check each artefact against what it records (sha256 manifests; structure where an engine keeps none); exit 1 on a failure')
    .argument('[dirs...]', 'directories to scan (default as for ls)')
    .action(run(async (ctx, dirs: string[]) => runVerify(ctx, dirs)));
  art
    .command('rm')
    .description('remove one artefact, exactly as ls prints its path')
    .argument('<path>', 'artefact path')
    .action(run(async (ctx, path: string) => runRm(ctx, path)));
}
