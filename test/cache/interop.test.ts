/**
 * Interop with the real peers: Python huggingface_hub (offline) and transformers load what coldstart
 * cached, and coldstart reuses what huggingface_hub wrote (Python pointed at the same local Hub server
 * through HF_ENDPOINT) without downloading again. The tiny model is fixtures/cache/tiny-llama, written by
 * transformers (fixtures/cache/make_tiny_model.py).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/cli.js';
import { peerPython } from '../helpers/python.js';
import { HubServer, servedFile, startHubServer } from '../helpers/hub-server.js';

const py = peerPython();
const fixture = fileURLToPath(new URL('../../fixtures/cache/tiny-llama', import.meta.url));
const REPO = 'coldstart-test/tiny-llama';

/** Async (the Hub server lives in this process: a blocking spawnSync would starve it). */
function python(code: string, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = spawn(py!, ['-c', code], { env: { ...process.env, HF_HUB_DISABLE_TELEMETRY: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1', TRANSFORMERS_VERBOSITY: 'error', ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (c) => (c === 0 ? resolve(out) : reject(new Error(`python exited ${c}: ${err}`))));
  });
}

let hub: HubServer;
let tmp: string;
let commit: string;

beforeAll(async () => {
  hub = await startHubServer();
  const files = readdirSync(fixture).map((n) => servedFile(n, readFileSync(join(fixture, n))));
  commit = hub.addRepo(REPO, files);
  hub.addRepo(`${REPO}-with-bin`, [...files, servedFile('pytorch_model.bin', readFileSync(join(fixture, 'model.safetensors')))]);
});
afterAll(async () => {
  await hub.stop();
});
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'coldstart-interop-'));
  hub.log.length = 0;
  return () => rmSync(tmp, { recursive: true, force: true });
});

const fileGets = () => hub.requests((r) => r.method === 'GET' && (r.host === 'cdn' || r.url.includes('/resolve/')));

describe.skipIf(!py)('interop with huggingface_hub and transformers', () => {
  it('huggingface_hub (offline) and transformers load what coldstart cached', async () => {
    const cache = join(tmp, 'hub');
    const r = await runCli(['--json', 'cache', REPO], { env: { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache } });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    const out = await python(
      `
import json, torch
from huggingface_hub import snapshot_download, hf_hub_download
from transformers import AutoConfig, AutoModelForCausalLM
snap = snapshot_download(${JSON.stringify(REPO)}, local_files_only=True)
cfg_path = hf_hub_download(${JSON.stringify(REPO)}, "config.json", local_files_only=True)
cfg = AutoConfig.from_pretrained(${JSON.stringify(REPO)})
m = AutoModelForCausalLM.from_pretrained(${JSON.stringify(REPO)})
ref = AutoModelForCausalLM.from_pretrained(${JSON.stringify(fixture)})
same = all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), ref.state_dict().values()))
print(json.dumps({"snap": snap, "cfg": cfg_path, "hidden": cfg.hidden_size, "same": same}))
`,
      { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' },
    );
    const res = JSON.parse(out.trim().split('\n').pop()!);
    expect(res.snap).toBe(doc.snapshotDir);
    expect(res.cfg).toBe(join(doc.snapshotDir, 'config.json'));
    expect(res.hidden).toBe(16);
    expect(res.same).toBe(true);
  });

  it('with the default .bin skip, offline snapshot_download needs allow_patterns (huggingface_hub reads our tree listing)', async () => {
    const cache = join(tmp, 'hub');
    const r = await runCli(['cache', `${REPO}-with-bin`], { env: { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache } });
    expect(r.code).toBe(0);
    const out = await python(
      `
import json
from huggingface_hub import snapshot_download
try:
    snapshot_download(${JSON.stringify(`${REPO}-with-bin`)}, local_files_only=True)
    plain = "ok"
except Exception as e:
    plain = type(e).__name__
p = snapshot_download(${JSON.stringify(`${REPO}-with-bin`)}, local_files_only=True, allow_patterns=["*.safetensors", "*.json"])
print(json.dumps({"plain": plain, "patterns": p}))
`,
      { HF_HUB_CACHE: cache, HF_HUB_OFFLINE: '1' },
    );
    const res = JSON.parse(out.trim().split('\n').pop()!);
    expect(res.plain).toBe('IncompleteSnapshotError');
    expect(res.patterns).toContain('snapshots');
  });

  it('coldstart reuses a cache huggingface_hub wrote, downloading nothing', async () => {
    const cache = join(tmp, 'hub');
    const snap = (await python(`from huggingface_hub import snapshot_download; print(snapshot_download(${JSON.stringify(REPO)}))`, { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache })).trim().split('\n').pop();
    expect(snap).toBe(join(cache, 'models--coldstart-test--tiny-llama', 'snapshots', commit));
    expect(fileGets().length).toBeGreaterThan(0); // Python did fetch through our server
    hub.log.length = 0;
    const r = await runCli(['--json', 'cache', REPO], { env: { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: cache } });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ fromCache: true, bytesDownloaded: 0, snapshotDir: snap });
    expect(fileGets()).toEqual([]);
    // And coldstart's verify accepts what Python wrote.
    const v = await runCli(['cache', 'verify', REPO], { env: { HF_HUB_CACHE: cache } });
    expect(v.code).toBe(0);
  });

  it('a --local-dir written by coldstart is up to date for huggingface_hub (no re-download)', async () => {
    const dir = join(tmp, 'local');
    const r = await runCli(['cache', REPO, '--local-dir', dir], { env: { HF_ENDPOINT: hub.endpoint, HF_HUB_CACHE: join(tmp, 'hub') } });
    expect(r.code).toBe(0);
    hub.log.length = 0;
    await python(`from huggingface_hub import snapshot_download; snapshot_download(${JSON.stringify(REPO)}, local_dir=${JSON.stringify(dir)})`, {
      HF_ENDPOINT: hub.endpoint,
      HF_HUB_CACHE: join(tmp, 'hub'),
    });
    expect(fileGets()).toEqual([]);
    const out = await python(`from transformers import AutoModelForCausalLM; m = AutoModelForCausalLM.from_pretrained(${JSON.stringify(dir)}); print(m.config.hidden_size)`, { HF_HUB_OFFLINE: '1' });
    expect(out.trim().split('\n').pop()).toBe('16');
  });
});
