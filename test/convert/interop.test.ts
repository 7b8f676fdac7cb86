/**
 * Interop with the real peers: every output is read by `safetensors.torch.load_file`, its tensors equal
 * `torch.load(weights_only=True)` of the input (materialised, with --dtype applied, aliases dropped as recorded in
 * __metadata__), and `transformers` from_pretrained of a converted model gives the same logits as from the .bin.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { peerPython, pythonWorker, type PythonWorker } from '../helpers/python.js';
import { runCli } from '../helpers/cli.js';

const FIX = fileURLToPath(new URL('../../fixtures/torch/', import.meta.url));
const py = peerPython();
let work: string;
// One Python for the file: torch (and transformers) imported once, not once per check.
let python: PythonWorker | undefined;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'coldstart-convert-interop-'));
  if (py) python = pythonWorker(py, { HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' });
});
afterAll(async () => {
  await python?.close();
  rmSync(work, { recursive: true, force: true });
});

const COMPARE = String.raw`
import json, sys, os, torch
from safetensors.torch import load_file
from safetensors import safe_open
cases = json.loads(sys.argv[1])
DT = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}
def raw(t):
    return t.contiguous().reshape(-1).view(torch.uint8)
report = []
for c in cases:
    srcs = c["inputs"]
    sd = {}
    for s in srcs:
        obj = torch.load(s, weights_only=True)
        if c.get("key"):
            for part in c["key"].split("."):
                obj = obj[part]
        sd.update(obj)
    out, meta = {}, {}
    for f in c["outputs"]:
        out.update(load_file(f))
        with safe_open(f, "pt") as h:
            meta.update(h.metadata() or {})
    assert meta.get("format") == "pt", (c["name"], meta)
    dropped = c.get("dropped", {})
    n = 0
    for name, t in sd.items():
        if name in dropped:
            assert name not in out, (c["name"], name, "dropped alias was written")
            assert meta.get(name) == dropped[name], (c["name"], name, "alias not in __metadata__")
            kept = sd[dropped[name]]
            assert torch.equal(raw(t), raw(kept)), (c["name"], name, "alias differs from kept tensor")
            continue
        exp = t.detach()
        if c.get("dtype") and exp.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
            exp = exp.to(DT[c["dtype"]])
        got = out[name]
        assert got.dtype == exp.dtype, (c["name"], name, got.dtype, exp.dtype)
        assert tuple(got.shape) == tuple(exp.shape), (c["name"], name, got.shape, exp.shape)
        assert torch.equal(raw(got), raw(exp)), (c["name"], name, "bytes differ")
        n += 1
    assert n + len(dropped) == len(sd)
    assert set(out) == set(sd) - set(dropped), (c["name"], sorted(set(out) ^ (set(sd) - set(dropped))))
    report.append({"name": c["name"], "tensors": n})
print(json.dumps(report))
`;

interface Case {
  name: string;
  inputs: string[];
  outputs: string[];
  key?: string;
  dtype?: string;
  dropped?: Record<string, string>;
}

async function convert(name: string, input: string, extra: string[] = []): Promise<{ outputs: string[]; dropped: Record<string, string>; key: string }> {
  const out = join(work, `${name}.safetensors`);
  const r = await runCli(['--json', 'convert', input, '-o', out, '--verify', ...extra]);
  if (r.code !== 0) throw new Error(`convert ${name} failed (${r.code}): ${r.stderr}`);
  const doc = JSON.parse(r.stdout);
  return { outputs: doc.details.files.map((f: { path: string }) => f.path), dropped: doc.details.droppedAliases, key: doc.details.key };
}

describe.skipIf(!py)('convert ↔ torch / safetensors (interop)', () => {
  it('every good fixture: load_file reads the output and its tensors equal torch.load(weights_only=True) of the input', async () => {
    const cases: Case[] = [];
    // References: torch's own weights_only loader cannot read protocol 4 (FRAME opcode), and torch does not
    // byteswap big-endian uint16/32/64 and float8 storages (it swaps by the untyped storage's 1-byte element);
    // make_fixtures.py writes both from the same tensors as every_dtype.pt, so that is their reference.
    const reference: Record<string, string> = { 'protocol4.pt': 'every_dtype.pt', 'bigendian.pt': 'every_dtype.pt' };
    const good = ['every_dtype.pt', 'views.pt', 'legacy.pt', 'legacy_views.pt', 'protocol4.pt', 'bigendian.pt', 'zip64.pt', 'descriptors.pt', 'other_prefix.pt', 'lightning.ckpt', 'wrapped_model.pt', 'nested.pt'];
    for (const f of good) {
      const r = await convert(f, join(FIX, 'good', f));
      cases.push({ name: f, inputs: [join(FIX, 'good', reference[f] ?? f)], outputs: r.outputs, key: r.key, dropped: r.dropped });
    }
    // --key picks one of several candidates
    const amb = await convert('ambiguous-ema', join(FIX, 'good', 'ambiguous.pt'), ['--key', 'ema']);
    cases.push({ name: 'ambiguous --key ema', inputs: [join(FIX, 'good', 'ambiguous.pt')], outputs: amb.outputs, key: 'ema', dropped: amb.dropped });
    // --dtype on every float dtype (f16 and bf16 rounding must match torch bit for bit, including NaN/inf/subnormals)
    for (const d of ['f16', 'bf16', 'f32']) {
      for (const f of ['every_dtype.pt', 'views.pt', 'bigendian.pt']) {
        const r = await convert(`${f}-${d}`, join(FIX, 'good', f), ['--dtype', d]);
        cases.push({ name: `${f} --dtype ${d}`, inputs: [join(FIX, 'good', reference[f] ?? f)], outputs: r.outputs, dtype: d.toUpperCase(), dropped: r.dropped });
      }
    }
    // sharded output of a single file
    const sh = await convert('views-sharded', join(FIX, 'good', 'views.pt'), ['--shard-size', '200B']);
    expect(sh.outputs.length).toBeGreaterThan(2);
    cases.push({ name: 'views --shard-size', inputs: [join(FIX, 'good', 'views.pt')], outputs: sh.outputs, dropped: sh.dropped });
    const res = JSON.parse(await python!.run(COMPARE, [JSON.stringify(cases)])) as Array<{ name: string; tensors: number }>;
    expect(res.map((x) => x.name)).toEqual(cases.map((c) => c.name));
    expect(res.find((x) => x.name === 'every_dtype.pt')!.tensors).toBe(21);
    expect(res.find((x) => x.name === 'legacy.pt')!.tensors).toBe(14);
    // the tied alias was dropped and recorded, like Hugging Face's converter
    expect(cases.find((c) => c.name === 'views.pt')!.dropped).toEqual({ 'lm_head.weight': 'embed.weight' });
  });

  it('multi-page strided views (page cache, long runs, expands) equal torch, also with --dtype', async () => {
    const src = join(work, 'big-views.pt');
    await python!.run(
      String.raw`
import sys, torch
torch.manual_seed(3)
w = torch.randn(700, 1500)
x = torch.randn(40, 50, 60)
sd = {"t": w.t(), "rows": w[100:650], "cols": w[:, 7:1400:3], "perm": x.permute(2, 0, 1), "perm2": x.permute(1, 2, 0)[5:45],
      "exp": torch.randn(3000, 1).expand(3000, 40), "half_t": w.half().t()[::2], "tail": w.reshape(-1)[-33333:]}
torch.save(sd, sys.argv[1])`,
      [src],
    );
    const cases: Case[] = [];
    for (const d of [null, 'bf16', 'f16']) {
      const r = await convert(`big-views-${d}`, src, d ? ['--dtype', d] : []);
      cases.push({ name: `big-views ${d}`, inputs: [src], outputs: r.outputs, dropped: r.dropped, ...(d ? { dtype: d.toUpperCase() } : {}) });
    }
    const res = JSON.parse(await python!.run(COMPARE, [JSON.stringify(cases)])) as Array<{ tensors: number }>;
    expect(res.map((x) => x.tensors)).toEqual([8, 8, 8]);
  });

  it('tiny Llama / GPT-2 / BERT (.bin, sharded): drop-in directories give the same logits with transformers', async () => {
    const models = ['tiny-llama', 'tiny-gpt2', 'tiny-bert', 'tiny-gpt2-sharded'];
    const pairs: Array<[string, string, string]> = [];
    for (const m of models) {
      const out = join(work, `${m}-st`);
      const r = await runCli(['--json', 'convert', join(FIX, 'models', m), '-o', out, '--verify', ...(m.endsWith('sharded') ? ['--shard-size', '60KB'] : [])]);
      expect(r.code, r.stderr).toBe(0);
      const files = readdirSync(out).sort();
      expect(files).toContain('config.json');
      expect(files).toContain('tokenizer_config.json');
      expect(files.some((f) => f.endsWith('.bin'))).toBe(false);
      if (m.endsWith('sharded')) expect(files).toContain('model.safetensors.index.json');
      else expect(files).toContain('model.safetensors');
      if (m === 'tiny-gpt2') expect(JSON.parse(r.stdout).details.droppedAliases).toEqual({ 'lm_head.weight': 'transformer.wte.weight' });
      pairs.push([m, join(FIX, 'models', m), out]);
    }
    const code = String.raw`
import json, sys, torch, logging
logging.disable(logging.WARNING)
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
out = []
for name, a, b in json.loads(sys.argv[1]):
    cls = AutoModelForMaskedLM if "bert" in name else AutoModelForCausalLM
    ma = cls.from_pretrained(a, use_safetensors=False).eval()
    mb = cls.from_pretrained(b, use_safetensors=True).eval()
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    with torch.no_grad():
        la, lb = ma(ids).logits, mb(ids).logits
    out.append({"name": name, "equal": bool(torch.equal(la, lb)), "shape": list(la.shape)})
print(json.dumps(out))
`;
    const res = JSON.parse(await python!.run(code, [JSON.stringify(pairs)])) as Array<{ name: string; equal: boolean; shape: number[] }>;
    expect(res).toHaveLength(4);
    for (const r of res) expect(r, r.name).toMatchObject({ equal: true });
  });
});
