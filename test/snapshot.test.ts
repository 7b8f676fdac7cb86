/**
 * snapshot / restore with real CRIU on a real CPU-only HTTP server (test/fixtures-servers/counter.mjs keeps a
 * counter in memory). CRIU comes from scripts/ci-criu.sh (Debian forky's criu 4.2 through its own loader);
 * CI sets COLDSTART_CRIU and COLDSTART_REQUIRE_CRIU=1, so a missing CRIU (or not being root) fails here
 * instead of skipping. park/unpark without a CUDA driver run everywhere.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, chmodSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCli } from './helpers/cli.js';

const criu = process.env.COLDSTART_CRIU ?? 'criu';
const server = resolve(__dirname, 'fixtures-servers/counter.mjs');

function criuReady(): boolean {
  const ok = process.getuid?.() === 0 && spawnSync(criu, ['--version']).status === 0;
  if (!ok && process.env.COLDSTART_REQUIRE_CRIU === '1') throw new Error(`COLDSTART_REQUIRE_CRIU=1 but ${criu} does not run or we are not root: eval "$(scripts/ci-criu.sh)"`);
  return ok;
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function listening(port: number): Promise<boolean> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000), headers: { connection: 'close' } });
    await r.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}

async function killAndWait(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 25));
}

function snapshotTree(dir: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of readdirSync(dir)) out[f] = statSync(join(dir, f)).mtimeMs;
  return out;
}

const ready = criuReady();
const tmp = mkdtempSync(join(tmpdir(), 'cs-snapshot-'));
const env = { COLDSTART_CRIU: criu };
const restored: number[] = [];
afterAll(async () => {
  for (const p of restored) await killAndWait(p);
  rmSync(tmp, { recursive: true, force: true });
});

describe.skipIf(!ready)('snapshot / restore with real CRIU', () => {
  let port = 0;
  const image = join(tmp, 'img');

  it('snapshots a warmed server: image + manifest written atomically, server stopped, port free', async () => {
    port = await freePort();
    const r = await runCli(
      ['snapshot', '--json', '-o', image, '--ready-url', `http://127.0.0.1:${port}/health`, '--warmup', `http://127.0.0.1:${port}/count`, '--', process.execPath, server, String(port)],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.schema).toBe('coldstart/snapshot@1');
    expect(doc.target.ports).toEqual([`127.0.0.1:${port}`]);
    const m = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8'));
    expect(m.schema).toBe('coldstart/snapshot-image@1');
    expect(m.cold.readySeconds).toBeGreaterThan(0);
    expect(m.cold.firstRequestSeconds).toBeGreaterThan(0);
    expect(m.fingerprint.kernel).toBe(readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
    expect(m.fingerprint.criu).toMatch(/^\d+\.\d+/);
    expect(m.files.some((f: { name: string }) => /^pages-\d+\.img$/.test(f.name))).toBe(true);
    expect(m.imageBytes).toBe(m.files.reduce((a: number, f: { bytes: number }) => a + f.bytes, 0));
    expect(m.warmup.bodySha256).toMatch(/^[0-9a-f]{64}$/);
    // No temp directories left next to the image; the server is gone.
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp'))).toEqual([]);
    expect(await listening(port)).toBe(false);
  });

  it('refuses an image from another machine fingerprint before touching anything (exit 2)', async () => {
    const other = join(tmp, 'other-kernel');
    cpSync(image, other, { recursive: true });
    const mf = join(other, 'manifest.json');
    const m = JSON.parse(readFileSync(mf, 'utf8'));
    m.fingerprint.kernel = '4.19.0-ancient';
    writeFileSync(mf, JSON.stringify(m));
    const log = `${image}.log`;
    const before = statSync(log).mtimeMs;
    const files = snapshotTree(other);
    const r = await runCli(['restore', other], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/different machine: kernel .* here, 4\.19\.0-ancient in the image/);
    expect(await listening(port)).toBe(false);
    expect(statSync(log).mtimeMs).toBe(before);
    expect(snapshotTree(other)).toEqual(files);
  });

  it('refuses a truncated image (sizes/hashes in the manifest) with exit 2, nothing restored', async () => {
    const bad = join(tmp, 'truncated');
    cpSync(image, bad, { recursive: true });
    const pages = readdirSync(bad).find((f) => /^pages-\d+\.img$/.test(f))!;
    truncateSync(join(bad, pages), statSync(join(bad, pages)).size - 4096);
    const r = await runCli(['restore', bad, '--json'], { env });
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    expect(doc.error.code).toBe('CORRUPT_FILE');
    expect(doc.error.message).toContain(`${pages} is`);
    expect(await listening(port)).toBe(false);
    // Same size, one flipped byte: the hash catches it.
    const flipped = join(tmp, 'flipped');
    cpSync(image, flipped, { recursive: true });
    const inv = join(flipped, 'inventory.img');
    const b = readFileSync(inv);
    b[b.length - 1] ^= 0xff;
    writeFileSync(inv, b);
    const r2 = await runCli(['restore', flipped], { env });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(/inventory\.img has sha256/);
    rmSync(bad, { recursive: true });
    rmSync(flipped, { recursive: true });
    rmSync(join(tmp, 'other-kernel'), { recursive: true });
  });

  it('refuses while its port is in use (exit 3) and leaves the listener alone', async () => {
    const holder: Server = createServer((s) => s.end());
    await new Promise<void>((r) => holder.listen(port, '127.0.0.1', r));
    try {
      const r = await runCli(['restore', image], { env });
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`port 127.0.0.1:${port} already in use`);
    } finally {
      await new Promise((r) => holder.close(r));
    }
  });

  it('a restore that never gets ready stops what it restored (all or nothing, exit 3)', async () => {
    const never = await freePort();
    const m = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8'));
    const r = await runCli(['restore', image, '--ready-url', `http://127.0.0.1:${never}/health`, '--timeout', '1'], { env });
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/not ready within 1 s/);
    for (let i = 0; i < 200 && existsSync(`/proc/${m.rootPid}`); i++) await new Promise((r2) => setTimeout(r2, 25));
    expect(existsSync(`/proc/${m.rootPid}`)).toBe(false);
    expect(await listening(port)).toBe(false);
  });

  it('restores: the server answers on its port with its counter intact, compared with the cold start', async () => {
    const r = await runCli(['restore', image, '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    restored.push(doc.details.pid);
    expect(doc.schema).toBe('coldstart/restore@1');
    const m = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8'));
    expect(doc.details.pid).toBe(m.rootPid);
    expect(doc.details.cold.totalSeconds).toBe(m.cold.totalSeconds);
    const phases = Object.fromEntries(doc.phases.map((p: { name: string }) => [p.name, p]));
    expect(phases['criu-restore'].seconds).toBeGreaterThan(0);
    // Just written and verified: the image sits in the page cache (mincore through the native addon).
    expect(doc.details.imageResidentBytes).toBeGreaterThan(0);
    expect(doc.details.imageResidentBytes).toBeLessThanOrEqual(m.imageBytes + 4096 * m.files.length);
    expect(phases['gpu-restore']).toMatchObject({ status: 'skipped', seconds: null });
    expect(phases['gpu-restore'].reason).toMatch(/^not measured/);
    // The restore repeated the warmup request: count 1 at snapshot time, 2 now, the next answer is 3.
    expect(doc.details.restored.firstRequest.status).toBe(200);
    const res = await fetch(`http://127.0.0.1:${port}/count`, { headers: { connection: 'close' } });
    expect(await res.json()).toEqual({ count: 3, pid: m.rootPid });
    // The same pid cannot be restored twice.
    const again = await runCli(['restore', image], { env });
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/already in use/);
    await killAndWait(doc.details.pid);
  });

  it('a failed dump leaves nothing that looks complete, and the server is stopped', async () => {
    const fake = join(tmp, 'criu-fails.sh');
    writeFileSync(fake, `#!/bin/sh\nif [ "$1" = --version ]; then exec "${criu}" --version; fi\nwhile [ "$1" != -D ]; do shift; done\necho partial > "$2/pages-1.img"\necho 'Error (criu/cr-dump.c:1): Dumping FAILED.' > "$2/dump.log"\nexit 1\n`);
    chmodSync(fake, 0o755);
    const p2 = await freePort();
    const out = join(tmp, 'failed');
    const r = await runCli(['snapshot', '-o', out, '--ready-url', `http://127.0.0.1:${p2}/health`, '--', process.execPath, server, String(p2)], { env: { COLDSTART_CRIU: fake } });
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('criu dump failed: Error (criu/cr-dump.c:1): Dumping FAILED.');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.startsWith('.failed'))).toEqual([]);
    for (let i = 0; i < 40 && (await listening(p2)); i++) await new Promise((r2) => setTimeout(r2, 25));
    expect(await listening(p2)).toBe(false);
  });

  it('refuses to dump onto a volume too small for the image (exit 3), writing no image', async () => {
    const small = join(tmp, 'small');
    spawnSync('mkdir', ['-p', small]);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', small]);
    expect(m.status, m.stderr?.toString()).toBe(0);
    try {
      const p3 = await freePort();
      const r = await runCli(['snapshot', '-o', join(small, 'img'), '--ready-url', `http://127.0.0.1:${p3}/health`, '--', process.execPath, server, String(p3)], { env });
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/has [\d.]+ [KM]iB free, the image needs about/);
      expect(readdirSync(small)).toEqual(['img.log']);
      expect(await listening(p3)).toBe(false);
    } finally {
      spawnSync('umount', [small]);
    }
  });

  it('doctor finds CRIU, runs criu check and says what GPU snapshots need', async () => {
    const r = await runCli(['doctor', '--json'], { env });
    expect(r.code).toBe(0);
    const sn = JSON.parse(r.stdout).snapshot;
    expect(sn.criu).toMatchObject({ found: true, path: criu, check: 'ok' });
    expect(sn.criu.version).toMatch(/^\d+\.\d+/);
    expect(sn.root).toBe(true);
    if (!sn.checkpointApi.available) expect(sn.fixes.join('\n')).toMatch(/NVIDIA driver 570 or newer/);
    const missing = await runCli(['doctor', '--json'], { env: { COLDSTART_CRIU: join(tmp, 'no-such-criu') } });
    expect(JSON.parse(missing.stdout).snapshot.fixes.join('\n')).toMatch(/no-such-criu not found; install it \(scripts\/ci-criu\.sh/);
  });

  it('refuses a directory that is not an image (exit 2)', async () => {
    const r = await runCli(['restore', tmp], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('has no manifest.json');
  });
});

describe('park / unpark', () => {
  const hasDriver = spawnSync('sh', ['-c', 'ldconfig -p | grep -q libcuda.so.1']).status === 0;
  it.skipIf(hasDriver)('say "not available: no CUDA driver" with exit 3 where there is none', async () => {
    for (const cmd of ['park', 'unpark']) {
      const r = await runCli([cmd, String(process.pid), '--json']);
      expect(r.code).toBe(3);
      const doc = JSON.parse(r.stdout);
      expect(doc.error.code).toBe('NO_GPU');
      expect(doc.error.message).toMatch(/^not available: no CUDA driver/);
    }
  });
  it('rejects a PID that is not a number (exit 2)', async () => {
    const r = await runCli(['park', 'abc']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('PID: expected a process id');
  });
});

describe('/proc readers for snapshot (no CRIU needed)', () => {
  it('finds the listening ports of a process by socket inode, IPv4 and IPv6, and not others', async () => {
    const { listeningPorts, hexAddr } = await import('../src/engines/criu.js');
    const s4 = createServer();
    const s6 = createServer();
    await new Promise<void>((r) => s4.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => s6.listen(0, '::1', r));
    try {
      const p4 = (s4.address() as { port: number }).port;
      const p6 = (s6.address() as { port: number }).port;
      const ports = listeningPorts([process.pid]);
      expect(ports).toContainEqual({ port: p4, address: '127.0.0.1', family: 4, pid: process.pid });
      expect(ports).toContainEqual({ port: p6, address: '::1', family: 6, pid: process.pid });
      expect(listeningPorts([process.ppid]).some((p) => p.port === p4)).toBe(false);
    } finally {
      s4.close();
      s6.close();
    }
    expect(hexAddr('B80D0120000000000000000001000000', 6)).toBe('2001:db8::1');
    expect(hexAddr('00000000000000000000000000000000', 6)).toBe('::');
  });

  it('walks the process tree of a real child and sizes its memory', async () => {
    const { processTree, treeMemoryBytes } = await import('../src/engines/criu.js');
    const { spawn } = await import('node:child_process');
    const child = spawn('sh', ['-c', 'sleep 30 & wait'], { stdio: 'ignore' });
    try {
      let tree: number[] = [];
      for (let i = 0; i < 100 && tree.length < 2; i++) {
        await new Promise((r) => setTimeout(r, 20));
        tree = processTree(child.pid!);
      }
      expect(tree[0]).toBe(child.pid);
      expect(tree.length).toBe(2);
      expect(readFileSync(`/proc/${tree[1]}/cmdline`, 'utf8')).toContain('sleep');
      expect(treeMemoryBytes(tree)).toBeGreaterThan(100 * 1024);
      for (const p of tree.slice(1)) process.kill(p, 'SIGKILL');
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('native checkpoint bindings', () => {
  it('validate their arguments and say why the driver API is unavailable', async () => {
    const { loadNative } = await import('../src/native.js');
    const n = loadNative();
    expect(n.ok, n.ok ? '' : n.reason).toBe(true);
    if (!n.ok) return;
    const a = n.addon;
    expect(() => a.cudaCheckpoint({ pid: -1, action: 'state' })).toThrow(/pid expected an integer/);
    expect(() => a.cudaCheckpoint({ pid: 1.5, action: 'state' })).toThrow(/pid expected an integer/);
    expect(() => a.cudaCheckpoint({ pid: 1, action: 'lock', timeoutMs: -1 })).toThrow(/timeoutMs/);
    const mem = await a.gpuMemory();
    expect(Array.isArray(mem.devices)).toBe(true);
    const hasDriver = spawnSync('sh', ['-c', 'ldconfig -p | grep -q libcuda.so.1']).status === 0;
    if (!hasDriver) {
      await expect(a.cudaCheckpoint({ pid: process.pid, action: 'state' })).rejects.toMatchObject({ code: 'NO_DRIVER', message: expect.stringMatching(/^not available: no CUDA driver/) });
      expect(mem.available).toBe(false);
      expect(mem.reason).toMatch(/libnvidia-ml\.so\.1/);
    } else {
      // With a driver: this test process holds no CUDA context, so its state query is an error or not "running".
      const s = await a.cudaCheckpoint({ pid: process.pid, action: 'state' }).catch((e: { code: string }) => ({ state: e.code }));
      expect(s.state).not.toBe('running');
    }
  });
});
