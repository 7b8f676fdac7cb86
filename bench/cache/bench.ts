/**
 * Download throughput of `coldstart cache` (its default, and with 4 Range parts per file forced) vs Python
 * `huggingface_hub.snapshot_download` and the `hf download` CLI, same local Hub server, same generated repo, same
 * run, each in a fresh process; plus the loopback limit (parallel curl of the same bytes, to /dev/null, to disk,
 * and to disk hashed by openssl as it lands: the wire with the guarantee the cache owes). Usage: bench/cache/run.sh [--shards 4] [--shard-mib 1024] [--runs 2]; prints one JSON document with every
 * sample, mean ± σ per contestant and each one's fraction of parallel curl.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync, statSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SHARDS = arg('shards', 4);
const SHARD_MIB = arg('shard-mib', 1024);
const RUNS = arg('runs', 2);
const CONCURRENCY = arg('concurrency', 8);
// Run from the repository root (run.sh does): the built CLI and scripts/pyenv.sh are found from there.
const repoRoot = process.cwd();
const REPO = 'bench/big-model';
const py = process.env.COLDSTART_PYTHON || spawnSync(join(repoRoot, 'scripts/pyenv.sh'), { encoding: 'utf8' }).stdout.trim();

function run(cmd: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string; seconds: number }> {
  return new Promise((res) => {
    const t0 = performance.now();
    const p = spawn(cmd, args, { env: { ...process.env, ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => res({ code: code ?? -1, out, err, seconds: (performance.now() - t0) / 1000 }));
  });
}

const tmp = mkdtempSync(join(tmpdir(), 'coldstart-bench-cache-'));
let server: ReturnType<typeof spawn> | null = null;
const cleanup = () => {
  server?.kill('SIGTERM');
  rmSync(tmp, { recursive: true, force: true });
};
process.on('SIGINT', () => {
  cleanup();
  process.exit(130);
});

try {
  // 1. Generate the repo: SHARDS × SHARD_MIB of incompressible bytes, hashed while written.
  const t0 = performance.now();
  const block = Buffer.alloc(16 << 20);
  randomFillSync(block);
  const shards: Array<{ path: string; diskPath: string; size: number; sha256: string }> = [];
  for (let i = 0; i < SHARDS; i++) {
    const path = `model-${String(i + 1).padStart(5, '0')}-of-${String(SHARDS).padStart(5, '0')}.safetensors`;
    const diskPath = join(tmp, 'src', path);
    if (i === 0) spawnSync('mkdir', ['-p', join(tmp, 'src')]);
    const fd = openSync(diskPath, 'w');
    const h = createHash('sha256');
    const chunks = (SHARD_MIB << 20) / block.length;
    for (let c = 0; c < chunks; c++) {
      block.writeUInt32LE(i, 0);
      block.writeUInt32LE(c, 4);
      h.update(block);
      writeSync(fd, block);
    }
    closeSync(fd);
    shards.push({ path, diskPath, size: SHARD_MIB << 20, sha256: h.digest('hex') });
  }
  const totalBytes = shards.reduce((a, s) => a + s.size, 0);
  const manifest = { repo: REPO, small: [{ path: 'config.json', text: '{"model_type":"llama"}' }], shards };
  writeFileSync(join(tmp, 'manifest.json'), JSON.stringify(manifest));
  process.stderr.write(`generated ${SHARDS} × ${SHARD_MIB} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

  // 2. The Hub server in its own process (so clients never share its event loop).
  const build = join(repoRoot, '.dev/bench-build');
  server = spawn(process.execPath, [join(build, 'bench/cache/server.js'), join(tmp, 'manifest.json')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((r) => createInterface({ input: server!.stdout! }).once('line', r));
  const { endpoint, commit } = JSON.parse(line) as { endpoint: string; commit: string };

  let hfMissing: string | null = null;
  const results: Record<string, number[]> = { loopback: [], loopbackToDisk: [], loopbackToDiskHashed: [], coldstart: [], coldstartWall: [], coldstartParts: [], coldstartPartsWall: [], python: [], pythonWall: [], hfCliWall: [] };
  const rate = (s: number) => totalBytes / s / 1e9;
  for (let r = 0; r < RUNS; r++) {
    // Loopback limit: curl fetches every shard in parallel through the same resolve → CDN redirect, to /dev/null.
    const urls = shards.map((s) => `${endpoint}/${REPO}/resolve/${commit}/${s.path}`);
    let t = performance.now();
    await Promise.all(urls.map((u) => run('curl', ['-sS', '-L', '-o', '/dev/null', u])));
    results.loopback.push(rate((performance.now() - t) / 1000));
    // Same, written to disk (what any downloader must at least do).
    t = performance.now();
    await Promise.all(urls.map((u, i) => run('curl', ['-sS', '-L', '-o', join(tmp, `raw-${i}`), u])));
    results.loopbackToDisk.push(rate((performance.now() - t) / 1000));
    for (let i = 0; i < urls.length; i++) rmSync(join(tmp, `raw-${i}`), { force: true });
    // Same, each stream also hashed as it lands (curl | tee FILE | openssl dgst -sha256: OpenSSL's SHA-NI/AVX code,
    // the one Node's hash uses, where coreutils' sha256sum is several times slower): the wire with the guarantee
    // every downloader of the cache owes (coldstart verifies every byte against the Hub's sha256).
    t = performance.now();
    const hashed = await Promise.all(urls.map((u, i) => run('sh', ['-c', 'curl -sS -L "$1" | tee "$2" | openssl dgst -sha256 -r', 'sh', u, join(tmp, `raw-${i}`)])));
    results.loopbackToDiskHashed.push(rate((performance.now() - t) / 1000));
    hashed.forEach((h, i) => {
      if (h.out.split(/\s/)[0] !== shards[i].sha256) throw new Error(`curl | openssl dgst -sha256 of ${shards[i].path}: ${h.out.trim()} ${h.err}`);
    });
    for (let i = 0; i < urls.length; i++) rmSync(join(tmp, `raw-${i}`), { force: true });

    // coldstart (child process, JSON result).
    const csCache = join(tmp, 'cs-cache');
    const cs = await run(process.execPath, [join(repoRoot, 'bin/coldstart.js'), '--json', 'cache', REPO, '--concurrency', String(CONCURRENCY)], { HF_ENDPOINT: endpoint, HF_HUB_CACHE: csCache });
    if (cs.code !== 0) throw new Error(`coldstart failed: ${cs.err}${cs.out}`);
    const doc = JSON.parse(cs.out) as { seconds: number; bytesDownloaded: number };
    if (doc.bytesDownloaded !== totalBytes + manifest.small[0].text.length) throw new Error(`coldstart downloaded ${doc.bytesDownloaded} bytes`);
    results.coldstart.push(rate(doc.seconds));
    results.coldstartWall.push(rate(cs.seconds));
    rmSync(csCache, { recursive: true, force: true });

    // The same with 4 Range parts per file forced (COLDSTART_PARTS=4): 16 streams, each file hashed in order as its
    // prefix lands (src/cache/parts.ts).
    const csp = await run(process.execPath, [join(repoRoot, 'bin/coldstart.js'), '--json', 'cache', REPO, '--concurrency', String(CONCURRENCY)], { HF_ENDPOINT: endpoint, HF_HUB_CACHE: csCache, COLDSTART_PARTS: '4' });
    if (csp.code !== 0) throw new Error(`coldstart (parts) failed: ${csp.err}${csp.out}`);
    const docp = JSON.parse(csp.out) as { seconds: number; bytesDownloaded: number };
    if (docp.bytesDownloaded !== totalBytes + manifest.small[0].text.length) throw new Error(`coldstart (parts) downloaded ${docp.bytesDownloaded} bytes`);
    results.coldstartParts.push(rate(docp.seconds));
    results.coldstartPartsWall.push(rate(csp.seconds));
    rmSync(csCache, { recursive: true, force: true });

    // Python huggingface_hub.snapshot_download (default max_workers=8), timed inside the interpreter.
    const pyCache = join(tmp, 'py-cache');
    const code = `import time, sys\nfrom huggingface_hub import snapshot_download\nt=time.perf_counter()\np=snapshot_download(${JSON.stringify(REPO)}, cache_dir=${JSON.stringify(pyCache)}, max_workers=${CONCURRENCY})\nprint(time.perf_counter()-t)\nprint(p)`;
    const p = await run(py, ['-c', code], { HF_ENDPOINT: endpoint, HF_HUB_DISABLE_PROGRESS_BARS: '1', HF_HUB_DISABLE_TELEMETRY: '1' });
    if (p.code !== 0) throw new Error(`python failed: ${p.err}`);
    const [secs, snap] = p.out.trim().split('\n');
    if (statSync(join(snap, shards[0].path)).size !== shards[0].size) throw new Error('python result incomplete');
    results.python.push(rate(Number(secs)));
    results.pythonWall.push(rate(p.seconds));
    rmSync(pyCache, { recursive: true, force: true });

    // The `hf download` CLI of the same huggingface_hub (next to the interpreter), wall time of the process.
    const hfCache = join(tmp, 'hf-cache');
    const hfBin = process.env.COLDSTART_HF_CLI || join(dirname(py), 'hf');
    if (existsSync(hfBin)) {
      const hf = await run(hfBin, ['download', REPO, '--cache-dir', hfCache, '--max-workers', String(CONCURRENCY)], { HF_ENDPOINT: endpoint, HF_HUB_DISABLE_PROGRESS_BARS: '1', HF_HUB_DISABLE_TELEMETRY: '1' });
      if (hf.code !== 0) throw new Error(`hf download failed: ${hf.err}`);
      results.hfCliWall.push(rate(hf.seconds));
    } else hfMissing = `not measured: no hf CLI at ${hfBin} (set COLDSTART_HF_CLI)`;
    rmSync(hfCache, { recursive: true, force: true });
    process.stderr.write(`run ${r + 1}/${RUNS}: ${Object.entries(results).map(([k, v]) => `${k} ${v[v.length - 1].toFixed(2)} GB/s`).join(', ')}\n`);
  }
  const median = (v: number[]) => {
    const x = [...v].sort((a, b) => a - b);
    const k = Math.floor(x.length / 2);
    return x.length % 2 ? x[k] : (x[k - 1] + x[k]) / 2;
  };
  // Ratios are taken per run (the contestants of one run ran back to back), then the median over runs.
  const perRun = (a: string, b: string) => results[a].map((v, i) => v / results[b][i]);
  const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v)]));
  const meanSd = (v: number[]) => {
    const m = v.reduce((x, y) => x + y, 0) / v.length;
    return { mean: m, sd: v.length > 1 ? Math.sqrt(v.reduce((x, y) => x + (y - m) ** 2, 0) / (v.length - 1)) : 0 };
  };
  const summary = {
    date: new Date().toISOString(),
    loadAverage: loadavg(),
    meanSdGBps: Object.fromEntries(Object.entries(results).filter(([, v]) => v.length).map(([k, v]) => [k, meanSd(v)])),
    // Each contestant's rate over parallel curl's of the same run (curl → /dev/null; wall clock where that is all there is).
    fractionOfCurl: Object.fromEntries(['coldstart', 'coldstartWall', 'coldstartParts', 'coldstartPartsWall', 'python', 'pythonWall', 'hfCliWall'].filter((k) => results[k].length).map((k) => [k, meanSd(perRun(k, 'loopback'))])),
    fractionOfCurlToDisk: Object.fromEntries(['coldstart', 'coldstartParts', 'python'].map((k) => [k, meanSd(perRun(k, 'loopbackToDisk'))])),
    // Over curl → disk with sha256sum beside it: the wire with the same integrity guarantee.
    fractionOfCurlToDiskHashed: Object.fromEntries(['coldstart', 'coldstartParts', 'python'].map((k) => [k, meanSd(perRun(k, 'loopbackToDiskHashed'))])),
    cpus: cpus().length,
    cpu: cpus()[0]?.model,
    python: spawnSync(py, ['-c', 'import huggingface_hub, sys; print(sys.version.split()[0], huggingface_hub.__version__)'], { encoding: 'utf8' }).stdout.trim(),
    node: process.version,
    repoBytes: totalBytes,
    shards: SHARDS,
    runs: RUNS,
    concurrency: CONCURRENCY,
    gbPerSecond: results,
    medianGBps: m,
    ratiosPerRun: { coldstartWallVsHfCliWall: perRun('coldstartWall', 'hfCliWall'), coldstartVsPython: perRun('coldstart', 'python'), coldstartVsLoopback: perRun('coldstart', 'loopback'), coldstartVsLoopbackToDisk: perRun('coldstart', 'loopbackToDisk') },
    coldstartVsPython: median(perRun('coldstart', 'python')),
    coldstartWallVsHfCliWall: hfMissing ?? median(perRun('coldstartWall', 'hfCliWall')),
    coldstartVsLoopback: median(perRun('coldstart', 'loopback')),
    coldstartVsLoopbackToDisk: median(perRun('coldstart', 'loopbackToDisk')),
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
} finally {
  cleanup();
}
