// Tensor-parallel sharded loads (issue #29) on the host: planTp's slices, loaded by the native engine into one host
// buffer per rank (the several sinks a multi-GPU machine would have), each chunk read once, compared byte for byte
// with vLLM's cuts of the same tensors made by torch (test/load/tp_oracle.py); and every refusal by name.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planChunks, prepareFiles, runGpuLoad } from '../../src/load/gpu-load.js';
import { planTp, shardKind, TP_OP_STRIDE } from '../../src/load/tp.js';
import { requireNative } from '../../src/native.js';
import { buildHeader } from '../../src/formats/safetensors.js';
import { peerPython } from '../helpers/python.js';

const oracle = fileURLToPath(new URL('./tp_oracle.py', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cs-tp-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('shardKind: the layouts vLLM shards', () => {
  it('names each kind', () => {
    const cases: Array<[string, string | null]> = [
      ['model.embed_tokens.weight', 'vocab'],
      ['lm_head.weight', 'vocab'],
      ['model.layers.0.self_attn.q_proj.weight', 'column'],
      ['model.layers.0.self_attn.k_proj.bias', 'kv'],
      ['model.layers.0.self_attn.o_proj.weight', 'row'],
      ['model.layers.0.self_attn.o_proj.bias', 'replicated'],
      ['model.layers.0.mlp.down_proj.weight_scale_inv', 'row'],
      ['model.layers.3.mlp.experts.17.gate_proj.weight', 'column'],
      ['model.layers.1.block_sparse_moe.experts.0.w2.weight', 'row'],
      ['model.layers.1.block_sparse_moe.gate.weight', 'replicated'],
      ['model.layers.2.self_attn.kv_a_proj_with_mqa.weight', 'replicated'],
      ['model.layers.2.self_attn.q_norm.weight', 'replicated'],
      ['model.norm.weight', 'replicated'],
      ['model.layers.0.self_attn.qkv_proj.weight', 'qkv'],
      ['model.layers.0.mlp.gate_up_proj.weight', 'gate_up'],
      ['model.layers.0.mlp.frobnicator.weight', null],
    ];
    for (const [name, kind] of cases) expect(shardKind(name), name).toBe(kind);
  });
});

describe.skipIf(!peerPython())('tensor-parallel loads into several host sinks, against vLLM\'s cuts (torch)', () => {
  let files: string[] = [];
  beforeAll(() => {
    const r = spawnSync(peerPython()!, [oracle, 'write', dir], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    files = readdirSync(dir)
      .filter((f) => f.endsWith('.safetensors'))
      .sort()
      .map((f) => join(dir, f));
  });

  for (const tp of [1, 2, 4, 8]) {
    it(`tp ${tp}: every rank holds exactly its slices; each byte of the files read once`, async () => {
      const prep = prepareFiles(files);
      const chunkBytes = 4096; // many chunk boundaries cut rows and tensors
      const plan = planTp(prep.headers, prep.paths, tp, chunkBytes, { numKeyValueHeads: 2, numAttentionHeads: 8 });
      const chunks = planChunks(prep.headers.map((h) => ({ begin: h.dataOffset, end: h.dataOffset + h.dataSize })), chunkBytes);
      const addon = requireNative('test');
      const r = await addon.gpuLoad({
        mode: 'host',
        sink: 'memory',
        files: prep.paths.map((path, i) => ({ path, begin: prep.headers[i]!.dataOffset, end: prep.headers[i]!.dataOffset + prep.headers[i]!.dataSize, device: -1 })),
        plan: chunks,
        chunkBytes,
        threads: 3,
        buffers: 4,
        returnHost: true,
        samples: Float64Array.from([0, 0, 1]),
        tp: { devices: plan.ranks.map(() => -1), bytes: plan.ranks.map((k) => k.bytes), ops: plan.ops },
      });
      // Read once: the bytes read are the data sections, however many ranks received them.
      expect(r.bytes).toBe(prep.headers.reduce((a, h) => a + h.dataSize, 0));
      expect(plan.readBytes).toBe(r.bytes);
      expect(r.tp!.ranks).toHaveLength(tp);
      expect(r.verify).toMatchObject({ mismatches: 0 });
      expect(r.verify!.checked).toBe(plan.ops.length / TP_OP_STRIDE);
      const py = spawnSync(peerPython()!, [oracle, 'slices', dir, String(tp)], { encoding: 'utf8', maxBuffer: 64 << 20 });
      expect(py.status, py.stderr).toBe(0);
      const want = JSON.parse(py.stdout) as Record<string, Record<string, string>>;
      let compared = 0;
      plan.ranks.forEach((rank, i) => {
        const data = r.tp!.ranks[i]!.data!;
        expect(data.length).toBe(rank.bytes);
        for (const s of rank.shards) {
          const got = createHash('sha256').update(data.subarray(s.offset, s.offset + s.bytes)).digest('hex');
          expect(got, `rank ${i} ${s.name}`).toBe(want[String(i)]![s.name]);
          compared++;
        }
      });
      expect(compared).toBe(tp * Object.keys(want['0']!).length);
      // Sharded layers really are split: at tp > 1 a rank gets less than the whole model.
      if (tp > 1) expect(plan.ranks[0]!.bytes).toBeLessThan(plan.readBytes);
    });
  }

  it('through runGpuLoad: per-rank bytes and finish, delivered vs read, verified', async () => {
    const r = await runGpuLoad({ files, tp: 2, verify: true, hostSink: 'memory' });
    expect(r.tp).toMatchObject({ degree: 2, readBytes: r.bytes });
    expect(r.tp!.ranks).toHaveLength(2);
    expect(r.tp!.ranks.every((k) => k.bytes > 0 && k.seconds >= 0)).toBe(true);
    expect(r.tp!.deliveredBytes).toBeGreaterThan(r.bytes); // the replicated tensors go to both ranks
    expect(r.verify).toMatchObject({ mismatches: 0 });
  });

  it('refuses what it cannot split, naming the tensor and the file', () => {
    const prep = prepareFiles(files);
    // A fused qkv_proj without the head counts cannot be cut.
    const fused = prepareFiles(files.filter((f) => f.includes('00003-of')));
    expect(() => planTp(fused.headers, fused.paths, 2, 4096, {})).toThrow(/00003-of-00003\.safetensors: model\.layers\.3\.self_attn\.qkv_proj\.weight: a fused qkv_proj needs num_attention_heads/);
    expect(() => planTp(prep.headers, prep.paths, 3, 4096, { numKeyValueHeads: 2, numAttentionHeads: 8 })).toThrow(/model-00001-of-00003\.safetensors: model\.[a-z_.0-9]+: (dim 0 \(\d+\)|a vocabulary of \d+ .*|\d+ KV heads) do(es)? not (split|replicate evenly) over 3 ranks/);
    expect(() => planTp(prep.headers, prep.paths, 0, 4096)).toThrow(/--tp 0: a tensor-parallel degree must be a whole number/);
    const odd = join(dir, 'odd.safetensors');
    const h = buildHeader([{ name: 'model.layers.0.mlp.frobnicator.weight', dtype: 'BF16', shape: [4, 4] }]);
    writeFileSync(odd, Buffer.concat([h.bytes, Buffer.alloc(32)]));
    const p2 = prepareFiles([odd]);
    expect(() => planTp(p2.headers, p2.paths, 2, 4096)).toThrow(/odd\.safetensors: model\.layers\.0\.mlp\.frobnicator\.weight: no tensor-parallel rule/);
    rmSync(odd);
  });

  it('the engine refuses a copy outside its chunk or its rank (BAD_ARG before anything runs)', () => {
    const prep = prepareFiles(files);
    const plan = planTp(prep.headers, prep.paths, 2, 4096, { numKeyValueHeads: 2, numAttentionHeads: 8 });
    const chunks = planChunks(prep.headers.map((h) => ({ begin: h.dataOffset, end: h.dataOffset + h.dataSize })), 4096);
    const addon = requireNative('test');
    const base = {
      mode: 'host' as const,
      sink: 'memory' as const,
      files: prep.paths.map((path, i) => ({ path, begin: prep.headers[i]!.dataOffset, end: prep.headers[i]!.dataOffset + prep.headers[i]!.dataSize, device: -1 })),
      plan: chunks,
      chunkBytes: 4096,
      threads: 1,
      buffers: 2,
    };
    const tamper = (i: number, v: number) => {
      const ops = plan.ops.slice();
      ops[i] = v;
      return () => addon.gpuLoad({ ...base, tp: { devices: [-1, -1], bytes: plan.ranks.map((k) => k.bytes), ops } });
    };
    expect(tamper(6, plan.ranks[0]!.bytes)).toThrow(/options\.tp\.ops\[0\] expected a copy inside its chunk's bytes and its rank's buffer/); // dst past the rank
    expect(tamper(2, 0)).toThrow(/options\.tp\.ops\[0\]/); // src before the chunk
    expect(tamper(3, 2 ** 53 - 1)).toThrow(/options\.tp\.ops\[0\]/); // width past everything
    expect(tamper(1, 2)).toThrow(/options\.tp\.ops\[0\]\.rank/);
    expect(() => addon.gpuLoad({ ...base, tp: { devices: [0, 1], bytes: [1, 1], ops: new Float64Array(0) } })).toThrow(/options\.tp\.devices\[0\]/); // a device in host mode
  });
});
