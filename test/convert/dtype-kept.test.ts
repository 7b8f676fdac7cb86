/**
 * `convert --dtype` on tensors already in that dtype says so ("already bf16: kept as is"), never "0 converted";
 * a mix says both counts, and the JSON carries them (convertedDtype, keptDtype).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { runCli } from '../helpers/cli.js';
import { peerPython, runPython } from '../helpers/python.js';

const dir = mkdtempSync(join(tmpdir(), 'cs-convert-kept-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SAVE = `
import sys, torch
torch.save({"a": torch.ones(4, dtype=torch.bfloat16), "b": torch.zeros(2, 3, dtype=torch.bfloat16), "i": torch.arange(3)}, sys.argv[1])
torch.save({"a": torch.ones(4, dtype=torch.bfloat16), "f": torch.ones(5, dtype=torch.float32)}, sys.argv[2])
`;

describe.skipIf(!peerPython())('convert --dtype on tensors already in that dtype', () => {
  const bf16 = join(dir, 'bf16.pt');
  const mixed = join(dir, 'mixed.pt');

  it('all bf16: "already bf16: kept as is", no "0 converted"; JSON counts them', async () => {
    runPython(peerPython()!, SAVE, [bf16, mixed]);
    const r = await runCli(['convert', bf16, '-o', join(dir, 'a.safetensors'), '--dtype', 'bf16']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/all 2 floating tensor\(s\) already bf16: kept as is/);
    expect(r.stdout).not.toMatch(/\b0 floating tensor/);
    const j = await runCli(['--json', 'convert', bf16, '-o', join(dir, 'b.safetensors'), '--dtype', 'bf16']);
    expect(JSON.parse(j.stdout).details).toMatchObject({ convertedDtype: 0, keptDtype: 2, dtype: 'BF16' });
  }, 120_000);

  it('a mix: both counts on one line', async () => {
    const r = await runCli(['convert', mixed, '-o', join(dir, 'm.safetensors'), '--dtype', 'bf16']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/1 floating tensor\(s\) converted to bf16; 1 already bf16: kept as is/);
  }, 120_000);
});
