/**
 * `coldstart cache artifacts ls|verify|rm` against directory layouts that mirror the real caches
 * (fixtures/compile-caches, each layout's source in LAYOUTS.source) and a coldstart torch.compile entry.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../../helpers/cli.js';
import { commitEntry, makeStaging, normalizeFingerprint, releaseStaging } from '../../../src/warmup/compile/store.js';
import { defaultArtifactRoots } from '../../../src/warmup/compile/adopt.js';

const fixtures = fileURLToPath(new URL('../../../fixtures/compile-caches', import.meta.url));
let tmp: string;
let vol: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coldstart-artifacts-'));
  vol = join(tmp, 'vol');
  cpSync(fixtures, vol, { recursive: true });
  // a coldstart entry on the same volume
  const store = join(vol, 'coldstart');
  const staging = makeStaging(store, 'x');
  mkdirSync(join(staging, 'inductor', 'ab'), { recursive: true });
  writeFileSync(join(staging, 'inductor', 'ab', 'k.so'), 'kernel');
  commitEntry(store, staging, { fingerprint: normalizeFingerprint({ torch: '2.11.0+cu130', gpu: 'NVIDIA H100 80GB HBM3', 'compute capability': '9.0', mode: 'reduce-overhead', model: 'f'.repeat(64) }), engineKeys: {}, coldSeconds: 43.4, tool: 'test' });
  releaseStaging(staging);
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

type Art = { engine: string; path: string; bytes: number; key: string; builtFor: string };

describe('cache artifacts ls', () => {
  it('finds each engine by its real layout, with size and the key it was built for', async () => {
    const r = await runCli(['--json', 'cache', 'artifacts', 'ls', vol]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { schema: string; artifacts: Art[]; totalBytes: number };
    expect(j.schema).toBe('coldstart/cache-artifacts@1');
    const by = Object.fromEntries(j.artifacts.map((a) => [a.engine + ':' + a.path.slice(vol.length + 1), a]));
    expect(Object.keys(by).sort()).toEqual([
      'coldstart:coldstart/torch-compile-' + j.artifacts.find((a) => a.engine === 'coldstart')!.key,
      'deepgemm:deep_gemm/cache',
      'flashinfer:flashinfer/.cache/flashinfer/90',
      'inductor:inductor/torchinductor_root',
      'tensorrt-llm:trtllm/llama-3-8b-tp2',
      'tensorrt:trtllm/model.cache',
      'triton:triton/cache',
      'vllm:vllm/torch_compile_cache/1517964802',
    ].sort());
    expect(by['vllm:vllm/torch_compile_cache/1517964802']!.key).toBe('1517964802');
    expect(by['vllm:vllm/torch_compile_cache/1517964802']!.builtFor).toContain('rank_0_0');
    expect(by['triton:triton/cache']!.builtFor).toBe('targets cuda:sm_90');
    expect(by['flashinfer:flashinfer/.cache/flashinfer/90']!.builtFor).toContain('sm_90');
    expect(by['tensorrt-llm:trtllm/llama-3-8b-tp2']!.builtFor).toContain('world size 2');
    expect(by['tensorrt-llm:trtllm/llama-3-8b-tp2']!.builtFor).toContain('quant FP8');
    expect(by['deepgemm:deep_gemm/cache']!.key).toBe('2 kernel(s)');
    const cs = j.artifacts.find((a) => a.engine === 'coldstart')!;
    expect(cs.builtFor).toMatch(/torch 2\.11\.0\+cu130, NVIDIA H100 80GB HBM3 cc 9\.0, mode reduce-overhead/);
    expect(cs.bytes).toBeGreaterThan(6); // kernel + manifest
    expect(j.totalBytes).toBe(j.artifacts.reduce((a, x) => a + x.bytes, 0));
  });

  it('human output is a table; a missing dir is one clear line (exit 2)', async () => {
    const r = await runCli(['cache', 'artifacts', 'ls', join(vol, 'vllm')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^engine\s+size\s+key\s+path\s+built for/);
    expect(r.stdout).toContain('1517964802');
    const bad = await runCli(['cache', 'artifacts', 'ls', join(tmp, 'nope')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/nope: no such file or directory/);
  });

  it('default roots follow each engine\'s own environment variables', () => {
    const r = defaultArtifactRoots({ HOME: '/h', VLLM_CACHE_ROOT: '/v', TRITON_CACHE_DIR: '/t', TORCHINDUCTOR_CACHE_DIR: '/i', FLASHINFER_WORKSPACE_BASE: '/f', DG_JIT_CACHE_DIR: '/d' });
    expect(r).toEqual(['/v', '/t', '/i', '/f/.cache/flashinfer', '/d', '/h/.cache/coldstart']);
    const d = defaultArtifactRoots({ HOME: '/h', USER: 'ann' });
    expect(d).toEqual(['/h/.cache/vllm', '/h/.triton/cache', '/tmp/torchinductor_ann', '/h/.cache/flashinfer', '/h/.deep_gemm', '/h/.cache/coldstart']);
  });
});

describe('cache artifacts verify', () => {
  it('flags an interrupted DeepGEMM compile and a corrupted coldstart entry (exit 1); the rest pass or say why not checkable', async () => {
    const entry = join(vol, 'coldstart');
    const name = (await import('node:fs')).readdirSync(entry).find((n) => n.startsWith('torch-compile-'))!;
    writeFileSync(join(entry, name, 'inductor', 'ab', 'k.so'), 'kerneL');
    const r = await runCli(['--json', 'cache', 'artifacts', 'verify', vol]);
    expect(r.code).toBe(1);
    const j = JSON.parse(r.stdout) as { artifacts: Array<Art & { check: { ok: boolean | null; problems: string[] } }>; failed: number };
    const st = Object.fromEntries(j.artifacts.map((a) => [a.engine, a.check]));
    expect(j.failed).toBe(2);
    expect(st.deepgemm!.ok).toBe(false);
    expect(st.deepgemm!.problems[0]).toMatch(/^kernel\.m_grouped_fp8_gemm_masked\.a9d41e07c2b3: no kernel\.cubin/);
    expect(st.coldstart!.ok).toBe(false);
    expect(st.coldstart!.problems[0]).toMatch(/^inductor\/ab\/k\.so: sha256/);
    expect(st.vllm!.ok).toBe(true);
    expect(st.triton!.ok).toBe(true);
    expect(st['tensorrt-llm']!.ok).toBe(true);
    expect(st.inductor!.ok).toBeNull();
  });

  it('a Triton kernel whose binary is gone, a TRT-LLM rank engine missing, a truncated vllm_compile_cache.py', async () => {
    rmSync(join(vol, 'deep_gemm'), { recursive: true });
    rmSync(join(vol, 'triton/cache/Z4NCC5PEYDPIHVRKC7HJR5LXUMIKRYAXKY3GGW4F5CKMSAEHBEAQ/triton_poi_fused_add_0.cubin'));
    rmSync(join(vol, 'trtllm/llama-3-8b-tp2/rank1.engine'));
    writeFileSync(join(vol, 'vllm/torch_compile_cache/1517964802/rank_0_0/backbone/vllm_compile_cache.py'), "{(None, 0, 'inductor'): ('fhk3");
    const r = await runCli(['cache', 'artifacts', 'verify', vol]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('triton_poi_fused_add_0.cubin: missing (metadata present)');
    expect(r.stdout).toContain('rank1.engine: missing (world size 2)');
    expect(r.stdout).toContain('vllm_compile_cache.py: not a Python dict literal');
  });
});

describe('cache artifacts rm', () => {
  it('removes exactly one listed artefact; refuses anything else', async () => {
    const p = join(vol, 'vllm/torch_compile_cache/1517964802');
    const r = await runCli(['cache', 'artifacts', 'rm', p]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^removed vllm artefact .*1517964802 \(281 B freed\)/);
    expect(existsSync(p)).toBe(false);
    expect(existsSync(join(vol, 'vllm/torch_compile_cache'))).toBe(true);
    const no = await runCli(['cache', 'artifacts', 'rm', join(vol, 'trtllm')]);
    expect(no.code).toBe(2);
    expect(no.stderr).toMatch(/not a compile artefact coldstart recognises; nothing removed/);
    expect(existsSync(join(vol, 'trtllm/llama-3-8b-tp2/rank0.engine'))).toBe(true);
  });
});
