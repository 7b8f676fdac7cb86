/**
 * Interop with the real producers/consumers: torch.load(weights_only=True) reads our .bin writer, safetensors
 * reads our shards, transformers loads both synthetic directories, and tensorsFor matches the state dict of
 * each architecture as transformers builds it (on the meta device: no memory).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { peerPython, pythonWorker, type PythonWorker } from '../helpers/python.js';
import { tempDir } from './helpers.js';
import { writeTorchCheckpoint, type TorchTensor } from '../../src/formats/torch-writer.js';
import { ensureSyntheticModel } from '../../src/models/synthetic.js';
import { findModel, MODELS, tensorsFor } from '../../src/models/table.js';
import { hfConfig } from '../../src/models/synthetic.js';

const py = peerPython();
const tmp = tempDir('cs-torch-');
afterAll(() => tmp.done());

describe.skipIf(!py)('torch interop', () => {
  // One Python for the file: torch and transformers imported once, not once per check.
  let python: PythonWorker;
  beforeAll(() => {
    python = pythonWorker(py!, { TRANSFORMERS_VERBOSITY: 'error', HF_HUB_OFFLINE: '1' });
  });
  afterAll(() => python.close());

  it('torch.load(weights_only=True) reads every dtype, scalars and empty tensors with the exact bytes; zip CRCs verify', async () => {
    const tensors: TorchTensor[] = [
      { name: 'a.bf16', dtype: 'BF16', shape: [3, 5] },
      { name: 'b.f32', dtype: 'F32', shape: [7] },
      { name: 'c.f16', dtype: 'F16', shape: [2, 2, 2] },
      { name: 'd.i64', dtype: 'I64', shape: [] },
      { name: 'e.bool', dtype: 'BOOL', shape: [4] },
      { name: 'f.empty', dtype: 'F32', shape: [0, 3] },
      { name: 'g.u8.big', dtype: 'U8', shape: [70_000] },
      { name: 'h.ünïcode', dtype: 'I32', shape: [2] },
    ];
    const path = join(tmp.dir, 'all.bin');
    const fd = openSync(path, 'wx');
    // Byte k of tensor i is (i * 31 + k) & 0x7f (bool: & 1), streamed in 4 KiB chunks to cross chunk borders.
    const byte = (i: number, k: number) => (tensors[i]!.dtype === 'BOOL' ? (i * 31 + k) & 1 : (i * 31 + k) & 0x7f);
    await writeTorchCheckpoint(fd, tensors, (i, chunk, off) => {
      for (let k = 0; k < chunk.length; k++) chunk[k] = byte(i, off + k);
    }, { chunkBytes: 4096, archiveName: 'all' });
    closeSync(fd);
    const out = JSON.parse(
      (await python.run(
        `import json, sys, zipfile, torch
assert zipfile.ZipFile(sys.argv[1]).testzip() is None
sd = torch.load(sys.argv[1], weights_only=True)
m = torch.load(sys.argv[1], weights_only=True, mmap=True)
out = {}
for k, v in sd.items():
    raw = v.contiguous().view(-1).view(torch.uint8).tolist() if v.numel() else []
    out[k] = {"dtype": str(v.dtype), "shape": list(v.shape), "raw": raw, "same_mmap": bool(torch.equal(v, m[k]))}
print(json.dumps(out))`,
        [path],
      )),
    ) as Record<string, { dtype: string; shape: number[]; raw: number[]; same_mmap: boolean }>;
    expect(Object.keys(out)).toEqual(tensors.map((t) => t.name));
    const torchDtype: Record<string, string> = { BF16: 'torch.bfloat16', F32: 'torch.float32', F16: 'torch.float16', I64: 'torch.int64', BOOL: 'torch.bool', U8: 'torch.uint8', I32: 'torch.int32' };
    tensors.forEach((t, i) => {
      const got = out[t.name]!;
      expect(got.dtype).toBe(torchDtype[t.dtype]);
      expect(got.shape).toEqual(t.shape);
      expect(got.same_mmap).toBe(true);
      expect(got.raw).toEqual(got.raw.map((_, k) => byte(i, k)));
    });
  });

  it('synthetic shards (both formats) load in safetensors, torch and transformers with the architecture\'s names and shapes', async () => {
    const spec = findModel('demo')!;
    const st = await ensureSyntheticModel(spec, 'safetensors', join(tmp.dir, 'c'), 'BF16', { shardBytes: 4e6 });
    const bin = await ensureSyntheticModel(spec, 'bin', join(tmp.dir, 'c'), 'BF16', { shardBytes: 4e6, chunkBytes: 1 << 20 });
    expect(st.files.length).toBe(3);
    expect(bin.files.length).toBe(3);
    const got = JSON.parse(
      (await python.run(
        `import json, sys, torch, transformers
from safetensors import safe_open
st_dir, bin_dir = sys.argv[1], sys.argv[2]
import glob
def shapes(files, loader):
    out = {}
    for f in sorted(files):
        for k, v in loader(f).items():
            out[k] = [str(v.dtype), list(v.shape)]
    return out
def st_load(f):
    with safe_open(f, "pt") as h:
        assert h.metadata() == {"format": "pt"}
        return {k: h.get_tensor(k) for k in h.keys()}
a = shapes(glob.glob(st_dir + "/*.safetensors"), st_load)
b = shapes(glob.glob(bin_dir + "/*.bin"), lambda f: torch.load(f, weights_only=True))
m1 = transformers.AutoModelForCausalLM.from_pretrained(st_dir)
m2 = transformers.AutoModelForCausalLM.from_pretrained(bin_dir)
print(json.dumps({"st": a, "bin": b, "models": [type(m1).__name__, type(m2).__name__], "dtype": str(m1.dtype)}))`,
        [st.dir, bin.dir],
      )).trim().split('\n').pop()!,
    ) as { st: Record<string, [string, number[]]>; bin: Record<string, [string, number[]]>; models: string[]; dtype: string };
    const want = Object.fromEntries(tensorsFor(spec).map((t) => [t.name, ['torch.bfloat16', t.shape]]));
    expect(got.st).toEqual(want);
    expect(got.bin).toEqual(want);
    expect(got.models).toEqual(['LlamaForCausalLM', 'LlamaForCausalLM']);
    expect(got.dtype).toBe('torch.bfloat16');
  });

  it('tensorsFor matches the state dict transformers builds for every alias (meta device)', async () => {
    const dir = join(tmp.dir, 'configs');
    for (const m of MODELS) {
      mkdirSync(join(dir, m.alias), { recursive: true });
      writeFileSync(join(dir, m.alias, 'config.json'), JSON.stringify(hfConfig(m)));
    }
    const got = JSON.parse(
      (await python.run(
        `import json, sys, torch, transformers
out = {}
for alias in sys.argv[2:]:
    cfg = transformers.AutoConfig.from_pretrained(sys.argv[1] + "/" + alias)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    out[alias] = {k: list(v.shape) for k, v in model.state_dict().items()}
print(json.dumps(out))`,
        [dir, ...MODELS.map((m) => m.alias)],
      )).trim().split('\n').pop()!,
    ) as Record<string, Record<string, number[]>>;
    for (const m of MODELS) {
      expect(got[m.alias], m.alias).toEqual(Object.fromEntries(tensorsFor(m).map((t) => [t.name, t.shape])));
    }
  });
});
