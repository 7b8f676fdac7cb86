/**
 * snapshot / restore / park / unpark orchestration with the SnapshotEngines seam: CRIU, the addon's checkpoint
 * calls, the host's root check and the clock are stand-ins, the server lifecycle is the real one (real servers,
 * the real watchdog), so refusals, clean-up after a failure (GPU given back, the whole tree stopped — a setsid
 * grandchild included), the steps recorded and the report run without root, CRIU or a GPU.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommandWith } from '../helpers/cli.js';
import { freePort } from '../helpers/fake-servers.js';
import { gone, pidsFrom, running } from '../helpers/procs.js';
import { checkTrace, decodeOtlp, startCollector } from '../helpers/otlp-collector.js';
import { peerPython } from '../helpers/python.js';
import { registerSnapshot } from '../../src/commands/snapshot.js';
import { buildHeader } from '../../src/formats/safetensors.js';
import { ColdstartError } from '../../src/core/errors.js';
import { nowSeconds } from '../../src/core/clock.js';
import { processTree } from '../../src/platform/procfs.js';
import { withSnapshotEngines, type SnapshotEngines } from '../../src/snapshot/engines.js';
import { FREE_PAGE_REPORTING_NOTE } from '../../src/snapshot/restore.js';
import type { CheckpointAction, SnapshotNative } from '../../src/snapshot/native.js';

const here = (f: string) => fileURLToPath(new URL(`../fixtures-servers/${f}`, import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'cs-snap-orch-'));
const py = peerPython();
const started: number[] = [];
afterAll(() => {
  for (const p of started) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  rmSync(tmp, { recursive: true, force: true });
});


type Call = { pid: number; action: CheckpointAction; gpuPairs?: Array<[string, string]> };

/** NVML-style GPU UUIDs (the driver's pairs take their 16 bytes). */
const UUID_A = 'GPU-0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9';
const UUID_B = 'GPU-f9e8d7c6-b5a4-9382-7160-5f4e3d2c1b0a';
type Device = { index: number; name: string; uuid: string; freeBytes?: number };

/**
 * The addon's checkpoint calls, recorded: `gpu` pids hold a CUDA context; `failOn` makes one call reject. Its NVML
 * lists `devices` (default: one "Fake GPU", UUID_A) with the processes that hold a context on the first, 9 GB each.
 */
function fakeNative(o: { gpu: (pid: number) => boolean; failOn?: (c: Call) => boolean; state?: string; devices?: Device[]; amx?: (pid: number) => number | Error; ranges?: () => Error | null; pageOut?: (pid: number) => Error | 'refused' | null }): SnapshotNative & { calls: Call[]; amxCalls: number[]; rangeCalls: Array<{ paths: string[]; ranges: number[][] }>; streams: string[][]; pageOuts: Array<{ pid: number; ranges: number[]; after: number }> } {
  const calls: Call[] = [];
  const pageOuts: Array<{ pid: number; ranges: number[]; after: number }> = [];
  const amxCalls: number[] = [];
  const rangeCalls: Array<{ paths: string[]; ranges: number[][] }> = [];
  const streams: string[][] = [];
  const holders = new Set<number>();
  return {
    calls,
    amxCalls,
    rangeCalls,
    streams,
    pageOuts,
    // snapshot's narrowing of the working set: recorded with how many checkpoint calls came before it (order).
    pageOut: async (pid, ranges) => {
      pageOuts.push({ pid, ranges, after: calls.length });
      const fail = o.pageOut?.(pid);
      const bytes = ranges.filter((_, i) => i % 2 === 1).reduce((a, b) => a + b, 0);
      if (fail === 'refused') return { bytes: 0, skipped: bytes, seconds: 0.001 }; // every mapping mlock'ed
      if (fail) throw fail;
      return { bytes, skipped: 0, seconds: 0.001 };
    },
    // restore --prefetch's weights: every byte "read" at once (a test that holds it replaces this); the real prefetch
    // is test/load/prefetch.test.ts's.
    prefetch: async (p) => {
      const files = p.files.map((path) => ({ path, bytes: statSync(path).size, residentBefore: 0, residentAfter: statSync(path).size }));
      const bytes = files.reduce((a, f) => a + f.bytes, 0);
      return { schema: 'coldstart/prefetch@1', strategy: p.strategy ?? 'pread', threads: p.threads ?? 1, bytes, seconds: 0.01, bytesPerSecond: bytes / 0.01, coldBytesPerSecond: bytes / 0.01, residency: { before: 0, after: 1 }, fallbackBytes: 0, readvisedBytes: 0, files, notes: [] };
    },
    // An image read by one stream: recorded, finished at once (a test that holds it replaces this).
    readInOrder: (paths) => {
      streams.push(paths);
      return { read: () => Infinity, done: Promise.resolve({ bytes: 4096 * paths.length, seconds: 0.01 }) };
    },
    readRanges: async (paths, ranges) => {
      rangeCalls.push({ paths, ranges });
      const fail = o.ranges?.();
      if (fail) throw fail;
      return { bytes: ranges.flatMap((r) => r.filter((_, i) => i % 2 === 1)).reduce((a, b) => a + b, 0), residentBefore: 0, seconds: 0.01, fallbackBytes: 0, readvisedBytes: 0 };
    },
    resumeGrantingAmx: async (pid) => {
      amxCalls.push(pid);
      const r = o.amx ? o.amx(pid) : 0;
      if (r instanceof Error) throw r;
      return { granted: r === 0, result: r };
    },
    unavailable: () => null,
    checkpoint: async (pid, action, opts) => {
      calls.push({ pid, action, ...(opts?.gpuPairs ? { gpuPairs: opts.gpuPairs } : {}) });
      if (o.failOn?.({ pid, action })) throw new ColdstartError('ENV', `pid ${pid}: cuCheckpointProcess ${action} failed: CUDA_ERROR_ILLEGAL_STATE`, { details: { nativeCode: 'CUDA_ERROR_ILLEGAL_STATE' } });
      if (action === 'state') {
        if (o.state) return { pid, action, seconds: 0, state: o.state as 'running' };
        if (!o.gpu(pid)) throw new ColdstartError('ENV', `pid ${pid}: not initialized`, { details: { nativeCode: 'CUDA_ERROR_NOT_INITIALIZED' } });
        holders.add(pid);
        return { pid, action, seconds: 0.001, state: 'running' };
      }
      return { pid, action, seconds: 0.25 };
    },
    gpuMemory: async () => ({
      available: true,
      driverVersion: '580.1',
      devices: (o.devices ?? [{ index: 0, name: 'Fake GPU', uuid: UUID_A }]).map((d, i) => ({
        ...d,
        totalBytes: 80e9,
        freeBytes: d.freeBytes ?? 70e9,
        usedBytes: 10e9,
        processes: i === 0 ? [...holders].map((pid) => ({ pid, usedBytes: 9e9 })) : [],
      })),
    }),
    cudaDriverVersion: async () => 13000,
    residentBytes: async () => null,
    // --floor's copy probe: 50 GB/s on every GPU.
    h2dBytesPerSecond: async () => 50e9,
    // restore --stage: "on the card" at once (a test that holds or fails it replaces this); unstage recorded in calls.
    stage: async (files, gpuUuid) => ({ id: 7, bytes: files.reduce((a, f) => a + statSync(f).size, 0), seconds: 0.01, files: files.map((path, i) => ({ path, handle: `${gpuUuid.slice(0, 2)}${String(i).padStart(2, '0')}`.repeat(32) })) }),
    unstage: (id) => void calls.push({ pid: id, action: 'unstage' as CheckpointAction }),
  };
}

/** Two 1 MiB safetensors shards of one U8 tensor each in `dir` (made if need be): weights a hook reads back. */
function writeTwoShards(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const name of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
    const n = 1 << 20;
    const header = Buffer.from(JSON.stringify({ w: { dtype: 'U8', shape: [n], data_offsets: [0, n] } }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(dir, name), Buffer.concat([len, header, Buffer.alloc(n, 7)]));
  }
}

/** A clock that runs with the real one, plus what the fake CRIU "spends" (so its step's duration is known). */
function fakeClock(): SnapshotEngines['clock'] & { spend(s: number): void } {
  let extra = 0;
  return { now: () => nowSeconds() + extra, date: () => new Date('2025-06-01T00:00:00Z'), spend: (s) => (extra += s) };
}

/** CRIU's dump as far as the orchestration sees it: image files written, the tree killed (CRIU kills it after a dump). */
function fakeDump(clock: { spend(s: number): void }, fail = false): SnapshotEngines['criu']['dump'] {
  return async (_criu, pid, dir) => {
    if (fail) throw new ColdstartError('ENV', 'criu dump failed: Error (criu/cr-dump.c:1): Dumping FAILED.', { details: { log: null } });
    writeFileSync(join(dir, 'inventory.img'), 'inventory');
    writeFileSync(join(dir, 'pages-1.img'), 'p'.repeat(4096));
    clock.spend(2);
    for (const p of processTree(pid).reverse()) process.kill(p, 'SIGKILL');
  };
}

function engines(o: { native: SnapshotNative; clock: ReturnType<typeof fakeClock>; root?: boolean; dumpFails?: boolean; restore?: SnapshotEngines['criu']['restore']; pidAlive?: (pid: number) => boolean; diskFree?: number | null; deviceHolders?: SnapshotEngines['host']['gpuDeviceHolders']; thp?: SnapshotEngines['host']['thp']; cpuFlags?: string[]; ended?: { ended: boolean; signal: number | null }; workingSet?: SnapshotEngines['host']['workingSet']; reporting?: boolean; permissions?: ReturnType<SnapshotEngines['host']['tracerPermissions']> }): SnapshotEngines & { starts: number; envs: Array<Record<string, string | undefined>> } {
  const e = withSnapshotEngines({
    criu: {
      require: async () => ({ path: '/fake/criu', version: '4.2.1' }),
      dump: fakeDump(o.clock, o.dumpFails),
      ...(o.restore ? { restore: o.restore } : {}),
    },
    native: o.native,
    host: { isRoot: () => o.root ?? true, ...(o.pidAlive ? { pidAlive: o.pidAlive } : {}), ...(o.deviceHolders ? { gpuDeviceHolders: o.deviceHolders } : {}), ...(o.diskFree !== undefined ? { diskFreeBytes: () => o.diskFree! } : {}), ...(o.thp ? { thp: o.thp } : {}), ...(o.cpuFlags ? { cpuFlags: () => new Set(o.cpuFlags) } : {}), ...(o.ended ? { processEnded: () => o.ended! } : {}), ...(o.workingSet ? { workingSet: o.workingSet } : {}), freePageReporting: () => o.reporting ?? false, tracerPermissions: () => o.permissions ?? { sysPtrace: true, sysAdmin: true, seccomp: 0, ptraceScope: null } },
    clock: o.clock,
  }) as SnapshotEngines & { starts: number; envs: Array<Record<string, string | undefined>> };
  e.starts = 0;
  e.envs = [];
  const start = e.server.start;
  e.server = { ...e.server, start: (opts) => (e.starts++, e.envs.push(opts.env), start(opts)) };
  return e;
}

const run = (e: SnapshotEngines, command: string, args: string[]) => runCommandWith(registerSnapshot, e, command, args);
const json = (r: { stdout: string }) => JSON.parse(r.stdout);

describe('snapshot with stand-in CRIU and GPU (no root needed)', () => {
  it('refuses without root before starting anything (exit 3, PERMISSION)', async () => {
    const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), root: false });
    const port = await freePort();
    const r = await run(e, 'snapshot', ['--json', '-o', join(tmp, 'never'), '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, here('counter.mjs'), String(port)]);
    expect(r.code).toBe(3);
    expect(json(r).error.code).toBe('PERMISSION');
    expect(e.starts).toBe(0);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });

  it('refuses where CRIU certainly would be refused, before starting anything (exit 3, ENV): a seccomp filter coldstart runs under, Yama 1 without CAP_SYS_PTRACE', async () => {
    const port = await freePort();
    const args = ['--json', '-o', join(tmp, 'never'), '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, here('counter.mjs'), String(port)];
    // A default Docker container: its seccomp profile, CAP_SYS_PTRACE and CAP_SYS_ADMIN dropped, the host's Yama at 1.
    const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), permissions: { sysPtrace: false, sysAdmin: false, seccomp: 2, ptraceScope: 1 } });
    const r = await run(e, 'snapshot', args);
    expect(r.code).toBe(3);
    const err = json(r).error;
    expect(err.code).toBe('ENV');
    expect(err.message).toMatch(/^snapshot: CRIU would be refused here: kernel\.yama\.ptrace_scope is 1 /);
    expect(err.hint).toMatch(/seccomp=unconfined.* Nothing was started\.$/);
    expect(err.details.permissions).toEqual({ sysPtrace: false, sysAdmin: false, seccomp: 2, ptraceScope: 1 });
    expect(e.starts).toBe(0);
    expect(existsSync(join(tmp, 'never'))).toBe(false);
  });

  it('refuses a bad --budget before starting anything (exit 2)', async () => {
    const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock() });
    const r = await run(e, 'snapshot', ['--json', '-o', join(tmp, 'never'), '--ready-url', 'http://127.0.0.1:9/health', '--budget', 'total=soon', '--', 'true']);
    expect(r.code).toBe(2);
    expect(json(r).error.code).toBe('BAD_BUDGET');
    expect(e.starts).toBe(0);
  });

  const image = join(tmp, 'img');
  let gpuPid = 0;

  it('locks then checkpoints every CUDA process, dumps, writes the manifest and reports each step; the budget verdict comes from the evaluator', async () => {
    const clock = fakeClock();
    let first: number | null = null;
    const native = fakeNative({ gpu: (pid) => (first ??= pid) === pid });
    const e = engines({ native, clock });
    const port = await freePort();
    const pidfile = join(tmp, 'ok.pids');
    const r = await run(e, 'snapshot', [
      '--json',
      '-o',
      image,
      '--ready-url',
      `http://127.0.0.1:${port}/health`,
      '--warmup',
      `http://127.0.0.1:${port}/health`,
      '--budget',
      'total=1ms',
      '--',
      process.execPath,
      here('tree-server.mjs'),
      String(port),
      pidfile,
    ]);
    expect(r.code, r.stderr).toBe(1);
    const doc = json(r);
    expect(doc.schema).toBe('coldstart/snapshot@1');
    // The one evaluator's verdict on the measured total (≥ the 2 s the stand-in dump spent).
    expect(doc.budgets).toEqual([expect.objectContaining({ phase: 'total', status: 'exceeded' })]);
    expect(doc.total.seconds).toBeGreaterThanOrEqual(2);
    const [server, grandchild] = await pidsFrom(pidfile);
    gpuPid = server;
    expect(doc.target.pids).toEqual(expect.arrayContaining([server, grandchild]));
    expect(doc.target.gpuPids).toEqual([server]);
    // Every process asked for its state; then lock, then checkpoint — of the one holding a context only.
    const acts = native.calls.filter((c) => c.action !== 'state');
    expect(acts).toEqual([
      { pid: server, action: 'lock' },
      { pid: server, action: 'checkpoint' },
    ]);
    expect(native.calls.filter((c) => c.action === 'state').map((c) => c.pid)).toEqual(expect.arrayContaining([server, grandchild]));
    const phases = Object.fromEntries(doc.phases.map((p: { name: string; seconds: number | null }) => [p.name, p.seconds]));
    expect(Object.keys(phases)).toEqual(['ready', 'first-request', 'working-set-warmup', 'gpu-lock', 'gpu-checkpoint', 'criu-dump', 'hash']);
    // The working set learned: every process's present file pages paged out (page-aligned address ranges read from
    // /proc), before anything was locked; the warmup sent again, answered the same.
    expect(native.pageOuts.map((c) => c.pid).sort()).toEqual([server, grandchild].sort());
    for (const c of native.pageOuts) {
      expect(c.after).toBe(0); // before the driver was asked anything
      expect(c.ranges.length % 2).toBe(0);
      expect(c.ranges.length).toBeGreaterThan(0);
      expect(c.ranges.every((v) => v % 4096 === 0 && v > 0)).toBe(true);
    }
    expect(doc.details.workingSet.learned).toEqual({ pagedOutBytes: native.pageOuts.reduce((a, c) => a + c.ranges.filter((_, i) => i % 2 === 1).reduce((x, y) => x + y, 0), 0), seconds: expect.any(Number), sameAnswer: true, error: null });
    expect(phases['criu-dump']).toBeGreaterThanOrEqual(2);
    expect(phases['criu-dump']).toBeLessThan(60);
    const m = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ schema: 'coldstart/snapshot-image@2', rootPid: server, gpuPids: [server], createdAt: '2025-06-01T00:00:00.000Z' });
    expect(m.fingerprint.gpu).toEqual({ driver: '580.1', cuda: 13000, devices: [{ index: 0, name: 'Fake GPU', uuid: UUID_A }] });
    // Which GPU the CUDA process held memory on, read before the lock: what a restore elsewhere pairs.
    expect(m.gpuUsed).toEqual([{ pid: server, uuid: UUID_A, bytes: 9e9 }]);
    expect(m.files.map((f: { name: string }) => f.name)).toEqual(['first-answer', 'inventory.img', 'pages-1.img', 'server.log']);
    // The pages of its files the server had mapped, read from /proc before the dump: node's own binary among them,
    // each file's ranges sorted, page-aligned and within the file as it is now.
    const ws = m.workingSet as { files: Array<{ path: string; bytes: number; mtimeMs: number; ranges: number[] }>; bytes: number };
    const node = ws.files.find((f) => f.path === realpathSync(process.execPath));
    expect(node).toBeDefined();
    expect(node!.bytes).toBe(statSync(process.execPath).size);
    for (const f of ws.files) {
      for (let k = 0; k < f.ranges.length; k += 2) {
        expect(f.ranges[k]! % 4096).toBe(0);
        expect(f.ranges[k]! + f.ranges[k + 1]!).toBeLessThanOrEqual(f.bytes);
        if (k) expect(f.ranges[k]!).toBeGreaterThan(f.ranges[k - 2]! + f.ranges[k - 1]!);
      }
    }
    expect(ws.bytes).toBe(ws.files.reduce((a, f) => a + f.ranges.filter((_, i) => i % 2 === 1).reduce((x, y) => x + y, 0), 0));
    // Every file the tree maps is listed (restore checks them all itself, sparing CRIU its build-ID reads).
    expect(m.workingSet.complete).toBe(true);
    expect(doc.details.workingSet).toMatchObject({ files: ws.files.length, bytes: ws.bytes });
    expect(readFileSync(join(image, 'server.log'), 'utf8')).toContain('listening');
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp'))).toEqual([]);
    expect(await gone([server, grandchild])).toEqual([]);
  });

  it('a process of the tree holding /dev/nvidia* without a CUDA context the driver checkpoints (an Inductor compile worker): refused (exit 3) before anything is locked, the tree stopped, no image', async () => {
    const clock = fakeClock();
    let first: number | null = null;
    const native = fakeNative({ gpu: (pid) => (first ??= pid) === pid });
    const e = engines({ native, clock, deviceHolders: (pids) => pids.filter((p) => p !== first).map((pid) => ({ pid, devices: ['/dev/nvidiactl'], command: 'python -m torch._inductor.compile_worker' })) });
    const port = await freePort();
    const pidfile = join(tmp, 'stray.pids');
    const out = join(tmp, 'stray-img');
    const r = await run(e, 'snapshot', ['--json', '-o', out, '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, here('tree-server.mjs'), String(port), pidfile]);
    expect(r.code).toBe(3);
    const err = json(r).error;
    expect(err.code).toBe('ENV');
    const [server, grandchild] = await pidsFrom(pidfile);
    expect(err.details.pids.map((p: { pid: number }) => p.pid)).toEqual([grandchild]);
    expect(err.message).toContain(`process (pid ${grandchild}: python -m)`);
    expect(native.calls.filter((c) => c.action !== 'state')).toEqual([]);
    expect(existsSync(out)).toBe(false);
    expect(await gone([server, grandchild])).toEqual([]);
  });

  it("Inductor's compile workers: the server compiles in-process unless the user chose a thread count; sixteen refused helpers read as one short line", async () => {
    const { snapshotServerEnv, describeHolders } = await import('../../src/snapshot/snapshot.js');
    const set = snapshotServerEnv({ PATH: '/bin' });
    expect(set.env).toEqual({ PATH: '/bin', TORCHINDUCTOR_COMPILE_THREADS: '1' });
    expect(set.note).toMatch(/TORCHINDUCTOR_COMPILE_THREADS=1 set for the server/);
    expect(snapshotServerEnv({ TORCHINDUCTOR_COMPILE_THREADS: '16' })).toEqual({ env: { TORCHINDUCTOR_COMPILE_THREADS: '16' }, note: null });
    // The lines of the H100 run (2026-12-05): 16 forked compile workers holding /dev/nvidia*.
    const worker = '/opt/torch/.venv/bin/python3 /opt/torch/.venv/lib/python3.12/site-packages/torch/_inductor/compile_worker/__main__.py --pickler=torch._inductor.compile_worker.subproc_pool.SubprocPickler --kind=fork -';
    const line = describeHolders(Array.from({ length: 16 }, (_, i) => ({ pid: 800 + 2 * i, command: worker })));
    expect(line).toBe('16 processes (pids 800, 802, 804, … 830: /opt/torch/.venv/bin/python3 …/compile_worker/__main__.py)');
    // And the server really started with it: its env as the snapshot passed it.
    const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock() });
    const port = await freePort();
    const r = await run(e, 'snapshot', ['--json', '-o', join(tmp, 'env-img'), '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, here('tree-server.mjs'), String(port), join(tmp, 'env.pids')]);
    expect(r.code, r.stderr).toBe(0);
    expect(e.envs[0]!.TORCHINDUCTOR_COMPILE_THREADS).toBe(process.env.TORCHINDUCTOR_COMPILE_THREADS ?? '1');
    // A Node server has no torch loaded: the variable is set, but nothing is said about it.
    expect(json(r).warnings.join('\n')).not.toMatch(/TORCHINDUCTOR_COMPILE_THREADS/);
    const { mapsFile } = await import('../../src/platform/procfs.js');
    const fakeProc = join(tmp, 'proc');
    mkdirSync(join(fakeProc, '41'), { recursive: true });
    writeFileSync(join(fakeProc, '41', 'maps'), '7f00-7f10 r-xp 0 08:01 5 /opt/venv/lib/python3.12/site-packages/torch/lib/libtorch_cuda.so\n');
    expect([mapsFile([40, 41], '/libtorch', fakeProc), mapsFile([40], '/libtorch', fakeProc), mapsFile([process.pid], '/libtorch')]).toEqual([true, false, false]);
  });

  it('a failed dump gives the GPU back (restore, unlock), stops the whole tree — the setsid grandchild too — and writes no image', async () => {
    const clock = fakeClock();
    let first: number | null = null;
    const native = fakeNative({ gpu: (pid) => (first ??= pid) === pid });
    const e = engines({ native, clock, dumpFails: true });
    const port = await freePort();
    const pidfile = join(tmp, 'fail.pids');
    const out = join(tmp, 'failed');
    const r = await run(e, 'snapshot', ['--json', '-o', out, '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, here('tree-server.mjs'), String(port), pidfile]);
    expect(r.code).toBe(3);
    expect(json(r).error.code).toBe('ENV');
    const [server, grandchild] = await pidsFrom(pidfile);
    expect(await gone([server, grandchild])).toEqual([]);
    expect(native.calls.filter((c) => c.action !== 'state')).toEqual([
      { pid: server, action: 'lock' },
      { pid: server, action: 'checkpoint' },
      { pid: server, action: 'restore' },
      { pid: server, action: 'unlock' },
    ]);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp).filter((f) => f.startsWith('.failed'))).toEqual([]);
  });

  it('a lock that fails gives back only what was locked, then stops the tree', async () => {
    const pids: number[] = [];
    const native = fakeNative({ gpu: (pid) => (pids.push(pid), true), failOn: (c) => c.action === 'lock' && c.pid === pids[1] });
    const e = engines({ native, clock: fakeClock() });
    const port = await freePort();
    const pidfile = join(tmp, 'lock.pids');
    const r = await run(e, 'snapshot', ['--json', '-o', join(tmp, 'lockfail'), '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, here('tree-server.mjs'), String(port), pidfile]);
    expect(r.code).toBe(3);
    expect(json(r).error.details.nativeCode).toBe('CUDA_ERROR_ILLEGAL_STATE');
    const [server, grandchild] = await pidsFrom(pidfile);
    expect(native.calls.filter((c) => c.action !== 'state')).toEqual([
      { pid: server, action: 'lock' },
      { pid: grandchild, action: 'lock' },
      { pid: server, action: 'restore' },
      { pid: server, action: 'unlock' },
    ]);
    expect(await gone([server, grandchild])).toEqual([]);
  });

  it('too little disk for the image: DISK_FULL (exit 3) before anything is locked or dumped, the server stopped', async () => {
    const native = fakeNative({ gpu: () => true });
    const e = engines({ native, clock: fakeClock(), diskFree: 1024 });
    const port = await freePort();
    const pidfile = join(tmp, 'disk.pids');
    const r = await run(e, 'snapshot', ['--json', '-o', join(tmp, 'disk'), '--ready-url', `http://127.0.0.1:${port}/health`, '--', process.execPath, here('tree-server.mjs'), String(port), pidfile]);
    expect(r.code).toBe(3);
    expect(json(r).error).toMatchObject({ code: 'DISK_FULL', details: { freeBytes: 1024 } });
    expect(native.calls.filter((c) => c.action !== 'state')).toEqual([]);
    expect(await gone(await pidsFrom(pidfile))).toEqual([]);
  });

  it("the working set learned from a second warmup: a page-out the kernel refuses is a note (no second request); an answer that differs is a note; a second answer that fails stops the snapshot (exit 3, tree stopped, no image); --no-working-set-warmup records every page, refused without --warmup", async () => {
    const snapWith = async (native: ReturnType<typeof fakeNative>, name: string, script: string, extra: string[] = []) => {
      const port = await freePort();
      const server = join(tmp, `${name}.mjs`);
      writeFileSync(server, script);
      const r = await run(engines({ native, clock: fakeClock() }), 'snapshot', ['--json', '-o', join(tmp, name), '--ready-url', `http://127.0.0.1:${port}/health`, '--warmup', `http://127.0.0.1:${port}/work`, ...extra, '--', process.execPath, server, String(port)]);
      return { r, doc: json(r), port };
    };
    // /work answers its own count; it fails from the FAIL-th request on.
    const server = (fail = 0) => `import http from 'node:http';
let n = 0;
http.createServer((req, res) => { res.setHeader('connection', 'close'); if (req.url === '/health') return res.end('ok'); n += 1; res.statusCode = ${fail} && n >= ${fail} ? 500 : 200; res.end(JSON.stringify({ n: ${fail} ? 1 : n })); }).listen(Number(process.argv[2]), '127.0.0.1');`;
    // The kernel refuses (no CAP_SYS_NICE): a note; no second request; every page recorded.
    const refused = fakeNative({ gpu: () => false, pageOut: (pid) => new ColdstartError('PERMISSION', `pid ${pid}: page out: process_madvise(MADV_PAGEOUT, pid ${pid}): Operation not permitted (errno 1)`, { details: { nativeCode: 'PERMISSION' } }) });
    const a = await snapWith(refused, 'ws-refused', server());
    expect(a.r.code, a.r.stderr).toBe(0);
    expect(a.doc.details.workingSet.learned).toEqual({ pagedOutBytes: 0, seconds: null, sameAnswer: null, error: expect.stringMatching(/Operation not permitted/) });
    expect(a.doc.warnings.join('\n')).toMatch(/working set was not narrowed .*Operation not permitted.*first restore reads them all/);
    expect(a.doc.phases.map((p: { name: string }) => p.name)).not.toContain('working-set-warmup');
    // A server that locked its memory: the kernel refuses every range; said so, no second request.
    const locked = await snapWith(fakeNative({ gpu: () => false, pageOut: () => 'refused' }), 'ws-locked', server());
    expect(locked.r.code, locked.r.stderr).toBe(0);
    expect(locked.doc.details.workingSet.learned).toMatchObject({ pagedOutBytes: 0, seconds: null, error: expect.stringMatching(/the kernel paged out none of .* of file pages \(mlock'ed or huge-page mappings\)/) });
    // A server whose second answer differs (a counter): said, the snapshot taken.
    const b = await snapWith(fakeNative({ gpu: () => false }), 'ws-differs', server());
    expect(b.r.code, b.r.stderr).toBe(0);
    expect(b.doc.details.workingSet.learned).toMatchObject({ sameAnswer: false, error: null });
    expect(b.doc.warnings.join('\n')).toMatch(/answered the warmup request differently when it was sent again/);
    // A second answer that fails: BAD_RESPONSE naming the flag to turn it off; the tree stopped, no image.
    const c = await snapWith(fakeNative({ gpu: () => false }), 'ws-fails', server(2));
    expect(c.r.code).toBe(3);
    expect(c.doc.error).toMatchObject({ code: 'BAD_RESPONSE', message: expect.stringMatching(/answered HTTP 500 when sent again/), hint: expect.stringMatching(/--no-working-set-warmup/) });
    expect(existsSync(join(tmp, 'ws-fails'))).toBe(false);
    expect(await fetch(`http://127.0.0.1:${c.port}/health`).then(() => true, () => false)).toBe(false);
    // --no-working-set-warmup: nothing paged out, one warmup (the counter answered once: the dump has n = 1).
    const off = fakeNative({ gpu: () => false });
    const d = await snapWith(off, 'ws-off', server(), ['--no-working-set-warmup']);
    expect(d.r.code, d.r.stderr).toBe(0);
    expect(off.pageOuts).toEqual([]);
    expect(d.doc.details.workingSet.learned).toBeNull();
    // Without --warmup the flag means nothing: refused before anything starts.
    const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock() });
    const r = await run(e, 'snapshot', ['--json', '-o', join(tmp, 'never'), '--ready-url', 'http://127.0.0.1:9/health', '--no-working-set-warmup', '--', 'true']);
    expect(r.code).toBe(2);
    expect(json(r).error.message).toMatch(/--no-working-set-warmup: only with --warmup/);
    // A bad value beside it is named first.
    const t = await run(e, 'snapshot', ['--json', '-o', join(tmp, 'never'), '--ready-url', 'http://127.0.0.1:9/health', '--no-working-set-warmup', '--timeout', 'soon', '--', 'true']);
    expect(t.code).toBe(2);
    expect(json(t).error.message).toMatch(/^--timeout: /);
    expect(e.starts).toBe(0);
  });

  it('--ready-log: ready when a line the server writes to IMAGE.log matches (the log file is read back as lines)', async () => {
    const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock() });
    const port = await freePort();
    const pidfile = join(tmp, 'log.pids');
    const out = join(tmp, 'by-log');
    const r = await run(e, 'snapshot', ['--json', '-o', out, '--ready-log', '^listening$', '--', process.execPath, here('tree-server.mjs'), String(port), pidfile]);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(m.readyUrl).toBeNull();
    expect(m.cold.readySeconds).toBeGreaterThan(0);
    expect(readFileSync(`${out}.log`, 'utf8')).toMatch(/^listening$/m);
    expect(await gone(await pidsFrom(pidfile))).toEqual([]);
  });

  it('a server that exits before it is ready: ENV (exit 3) naming the exit, no image', async () => {
    const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock() });
    const r = await run(e, 'snapshot', ['--json', '-o', join(tmp, 'died'), '--ready-url', 'http://127.0.0.1:9/health', '--', process.execPath, '-e', 'process.exit(7)']);
    expect(r.code).toBe(3);
    expect(json(r).error).toMatchObject({ code: 'ENV', details: { exit: 'exited with 7' } });
    expect(existsSync(join(tmp, 'died'))).toBe(false);
  });

  describe('restore of that image', () => {
    /** CRIU's restore as the orchestration sees it: a tree comes back (here: started anew, detached) and its pid is returned. */
    const works: string[] = [];
    /** What each restore asked of CRIU besides the image (leaveStopped, filesChecked). */
    const criuOpts: Array<Parameters<SnapshotEngines['criu']['restore']>[6]> = [];
    function fakeRestore(port: number, pidfile: string): SnapshotEngines['criu']['restore'] {
      return async (_criu, _dir, work, _env, _timeout, _inherit, opts) => {
        works.push(work);
        criuOpts.push(opts);
        const c = spawn(process.execPath, [here('tree-server.mjs'), String(port), pidfile], { detached: true, stdio: 'ignore' });
        c.unref();
        const [server, grandchild] = await pidsFrom(pidfile);
        started.push(server, grandchild);
        return server;
      };
    }

    it('restores GPU state (restore, then unlock, per GPU process), waits for ready and reports restored vs cold', async () => {
      const native = fakeNative({ gpu: () => false });
      const port = await freePort();
      const pidfile = join(tmp, 'restored.pids');
      const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
      const collector = await startCollector();
      const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', '--budget', 'total=1h', '--otlp', `${collector.endpoint}/v1/traces`]);
      await collector.close();
      expect(r.code, r.stderr).toBe(0);
      const doc = json(r);
      expect(doc.schema).toBe('coldstart/restore@1');
      // Every mapped file as the snapshot found it: checked here, CRIU left to check sizes only.
      expect(criuOpts.at(-1)).toEqual({ leaveStopped: true, filesChecked: true });
      expect(doc.details.fileCheck).toMatchObject({ by: 'coldstart', changed: 0, files: JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8')).workingSet.files.length });
      // Its trace: the restore's phases under one root, each the JSON report's seconds (decoded with opentelemetry-proto).
      expect(collector.received).toHaveLength(1);
      if (py) checkTrace(expect, decodeOtlp(py, collector.received[0]!.body, join(tmp, 'restore-otlp.bin')), doc, 'restore');
      expect(doc.budgets).toEqual([expect.objectContaining({ phase: 'total', status: 'ok' })]);
      expect(native.calls.filter((c) => c.action !== 'state')).toEqual([
        { pid: gpuPid, action: 'restore' },
        { pid: gpuPid, action: 'unlock' },
      ]);
      const phases = Object.fromEntries(doc.phases.map((p: { name: string }) => [p.name, p]));
      expect(phases['gpu-restore'].seconds).toBeGreaterThanOrEqual(0);
      expect(phases['ready'].status).toBe('ok');
      expect(phases['first-request']).toMatchObject({ status: 'skipped', reason: 'not measured: --no-first-request' });
      const [server, grandchild] = await pidsFrom(pidfile);
      expect(doc.details.pid).toBe(server);
      // Left running: that is what a restore is for.
      expect([running(server), running(grandchild)]).toEqual([true, true]);
      process.kill(grandchild, 'SIGKILL');
      process.kill(server, 'SIGKILL');
    });

    it("reads the server's library pages ahead alongside CRIU (details.workingSet): files changed or gone since the snapshot left out; a failed read is a warning, never a failed restore", async () => {
      // The image's working set, plus two files that are no longer what the server had mapped.
      const mf = join(image, 'manifest.json');
      const original = readFileSync(mf, 'utf8');
      const m = JSON.parse(original);
      const changed = join(tmp, 'changed.so');
      writeFileSync(changed, Buffer.alloc(8192, 1));
      const st = statSync(changed);
      m.workingSet.files.push({ path: changed, bytes: st.size, mtimeMs: st.mtimeMs, ranges: [0, 4096] }, { path: join(tmp, 'gone.so'), bytes: 4096, mtimeMs: 1, ranges: [0, 4096] });
      m.workingSet.bytes += 8192;
      writeFileSync(mf, JSON.stringify(m));
      utimesSync(changed, new Date(), new Date(Date.now() + 5000));
      try {
        for (const fails of [false, true]) {
          const native = fakeNative({ gpu: () => false, ranges: () => (fails ? new ColdstartError('IO', 'working set: read failed') : null) });
          const port = await freePort();
          const pidfile = join(tmp, `ws-${fails}.pids`);
          const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
          const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request']);
          expect(r.code, r.stderr).toBe(0);
          const doc = json(r);
          expect(native.rangeCalls).toHaveLength(1);
          const asked = native.rangeCalls[0]!;
          expect(asked.paths).toContain(realpathSync(process.execPath));
          expect(asked.paths).not.toContain(changed);
          expect(asked.ranges[asked.paths.indexOf(realpathSync(process.execPath))]).toEqual(m.workingSet.files.find((f: { path: string }) => f.path === realpathSync(process.execPath)).ranges);
          const want = m.workingSet.bytes - 8192;
          // Two files not as the snapshot found them: CRIU checks the files itself (build-IDs), and the report says why.
          expect(criuOpts.at(-1)).toEqual({ leaveStopped: true, filesChecked: false });
          expect(doc.details.fileCheck).toMatchObject({ by: 'criu', changed: 2, files: m.workingSet.files.length });
          expect(doc.warnings.join('\n')).toContain(`2 of the files the server maps are not as the snapshot found them (${changed}: changed since the snapshot (size or mtime)): CRIU checks them by their ELF build-IDs`);
          if (!fails) {
            expect(doc.details.workingSet).toMatchObject({ files: m.workingSet.files.length - 2, skipped: 2, bytes: want, residentBefore: 0, error: null });
            expect(doc.warnings.join('\n')).not.toMatch(/library pages/);
          } else {
            expect(doc.details.workingSet).toMatchObject({ error: 'working set: read failed' });
            expect(doc.warnings.join('\n')).toMatch(/reading the server's library pages ahead failed \(the restore went on without it\): working set: read failed/);
          }
          for (const q of await pidsFrom(pidfile)) process.kill(q, 'SIGKILL');
        }
      } finally {
        writeFileSync(mf, original);
      }
    });

    it("keeps what the restored server touched of its files for the next restore, which reads that instead of the manifest's working set; joined each time; a bad or stale kept file is a note, never a failed restore", async () => {
      const mf = join(image, 'manifest.json');
      const original = readFileSync(mf, 'utf8');
      const m = JSON.parse(original);
      const keptPath = join(image, 'working-set.restored.json');
      const node = realpathSync(process.execPath);
      const st = statSync(node);
      const touched = (ranges: number[]) => () => ({ files: [{ path: node, bytes: st.size, mtimeMs: st.mtimeMs, ranges }], bytes: ranges.filter((_, i) => i % 2).reduce((a, b) => a + b, 0), complete: true as const });
      const restoreOnce = async (workingSet: SnapshotEngines['host']['workingSet'], name: string) => {
        const native = fakeNative({ gpu: () => false });
        const port = await freePort();
        const pidfile = join(tmp, `kept-${name}.pids`);
        const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false, workingSet });
        const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request']);
        for (const q of await pidsFrom(pidfile)) process.kill(q, 'SIGKILL');
        expect(r.code, r.stderr).toBe(0);
        return { doc: json(r), asked: native.rangeCalls[0]! };
      };
      try {
        // 1. None kept yet: the manifest's working set is read; what the server maps after its answer is kept.
        const first = await restoreOnce(touched([0, 4096, 1 << 20, 8192]), 'first');
        expect(first.doc.details.workingSet).toMatchObject({ source: 'snapshot', files: m.workingSet.files.filter((f: { ranges: number[] }) => f.ranges.length).length });
        expect(first.doc.details.workingSetKept).toEqual({ path: keptPath, files: 1, bytes: 12288, error: null });
        const kept = JSON.parse(readFileSync(keptPath, 'utf8'));
        expect(kept).toMatchObject({ schema: 'coldstart/restored-working-set@1', workingSet: { files: [{ path: node, ranges: [0, 4096, 1 << 20, 8192] }], bytes: 12288 } });
        expect(kept.workingSet).not.toHaveProperty('complete'); // only the manifest says which files the server maps
        expect(kept.manifestSha256).toMatch(/^[0-9a-f]{64}$/);
        // 2. The next restore reads exactly the kept ranges (its file check still the manifest's), then keeps both joined.
        const second = await restoreOnce(touched([4 << 20, 4096]), 'second');
        expect(second.asked).toEqual({ paths: [node], ranges: [[0, 4096, 1 << 20, 8192]] });
        expect(second.doc.details.workingSet).toMatchObject({ source: 'restored', files: 1, bytes: 12288 });
        expect(second.doc.details.fileCheck).toMatchObject({ by: 'coldstart', files: m.workingSet.files.length });
        expect(JSON.parse(readFileSync(keptPath, 'utf8')).workingSet.files[0].ranges).toEqual([0, 4096, 1 << 20, 8192, 4 << 20, 4096]);
        // 2b. A server that touched nothing new: the kept file is left as it is (not written again), and reported.
        const settledAt = Math.floor(Date.now() / 1000) - 60; // whole seconds: mtimeMs is a float
        utimesSync(keptPath, settledAt, settledAt);
        const before = readFileSync(keptPath, 'utf8');
        const settled = await restoreOnce(touched([1 << 20, 4096]), 'settled');
        expect(settled.doc.details.workingSetKept).toEqual({ path: keptPath, files: 1, bytes: 16384, error: null });
        expect(Math.round(statSync(keptPath).mtimeMs)).toBe(settledAt * 1000);
        expect(readFileSync(keptPath, 'utf8')).toBe(before);
        // 3. Garbage kept there: the manifest's is read, said in one line; the next keep replaces it.
        writeFileSync(keptPath, '{"schema": "coldstart/restored-working-set@1", "manif');
        const third = await restoreOnce(touched([0, 4096]), 'third');
        expect(third.doc.details.workingSet.source).toBe('snapshot');
        expect(third.doc.warnings.join('\n')).toMatch(/the restored server's working set kept in .* was not used \(the manifest's was read instead\): .*working-set\.restored\.json: not JSON/);
        expect(JSON.parse(readFileSync(keptPath, 'utf8')).workingSet.files[0].ranges).toEqual([0, 4096]);
        // 4. Kept for another manifest (an image taken again at this path): not used.
        writeFileSync(mf, `${original} `);
        const fourth = await restoreOnce(touched([0, 4096]), 'fourth');
        expect(fourth.doc.details.workingSet.source).toBe('snapshot');
        expect(fourth.doc.warnings.join('\n')).toMatch(/manifestSha256: expected the sha256 of this image's manifest\.json/);
        writeFileSync(mf, original);
        // 5. Not writable there (a folder in its place): a note, the restore itself fine; nothing read from the folder.
        rmSync(keptPath);
        mkdirSync(keptPath);
        const fifth = await restoreOnce(touched([0, 4096]), 'fifth');
        expect(fifth.doc.details.workingSetKept).toMatchObject({ path: keptPath, error: expect.stringContaining(keptPath) });
        expect(fifth.doc.warnings.join('\n')).toMatch(/the restored server's working set was not kept \(the next restore reads the manifest's\)/);
        // 6. Nothing readable of the restored tree (/proc): nothing kept, nothing said.
        rmSync(keptPath, { recursive: true });
        const sixth = await restoreOnce(() => null, 'sixth');
        expect(sixth.doc.details.workingSetKept).toBeNull();
        expect(existsSync(keptPath)).toBe(false);
      } finally {
        writeFileSync(mf, original);
        rmSync(keptPath, { recursive: true, force: true });
      }
    });

    it('--huge-pages: THP is "always" while CRIU restores the pages and put back after, also when CRIU fails; without the flag it is never touched', async () => {
      let mode: 'always' | 'madvise' | 'never' | null = 'madvise';
      const writes: string[] = [];
      const thp = { read: () => mode, write: (m: 'always' | 'madvise' | 'never') => void (writes.push(m), (mode = m)) };
      const seen: Array<string | null> = [];
      const port = await freePort();
      const pidfile = join(tmp, 'thp.pids');
      const during = (inner: SnapshotEngines['criu']['restore']): SnapshotEngines['criu']['restore'] => async (...a) => (seen.push(mode), inner(...a));
      const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), restore: during(fakeRestore(port, pidfile)), pidAlive: () => false, thp });
      const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', '--huge-pages']);
      expect(r.code, r.stderr).toBe(0);
      expect(seen).toEqual(['always']);
      expect(mode).toBe('madvise');
      expect(json(r).details.hugePages).toEqual({ before: 'madvise', during: 'always', putBack: true });
      for (const p of await pidsFrom(pidfile)) process.kill(p, 'SIGKILL');
      // CRIU fails: put back all the same.
      const failing = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), pidAlive: () => false, thp, restore: during(async () => { throw new ColdstartError('ENV', 'criu restore failed'); }) });
      const f = await run(failing, 'restore', [image, '--json', '--huge-pages']);
      expect(f.code).toBe(3);
      expect([seen.at(-1), mode]).toEqual(['always', 'madvise']);
      // Without the flag: read nor written.
      writes.length = 0;
      const plain = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), pidAlive: () => false, thp, restore: during(async () => { throw new ColdstartError('ENV', 'criu restore failed'); }) });
      await run(plain, 'restore', [image, '--json']);
      expect([writes, seen.at(-1)]).toEqual([[], 'madvise']);
      // A kernel without THP: said, and the restore goes on.
      mode = null;
      const port2 = await freePort();
      const pidfile2 = join(tmp, 'thp2.pids');
      const none = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), restore: fakeRestore(port2, pidfile2), pidAlive: () => false, thp });
      const n = await run(none, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port2}/health`, '--no-first-request', '--huge-pages']);
      expect(n.code, n.stderr).toBe(0);
      expect(json(n).warnings.join('\n')).toMatch(/--huge-pages: this kernel has no transparent huge pages/);
      for (const p of await pidsFrom(pidfile2)) process.kill(p, 'SIGKILL');
    });

    it('--huge-pages in a VM that hands free memory back to its hypervisor: said (a warning), and only then', async () => {
      const warningsOf = async (reporting: boolean, flags: string[]) => {
        const port = await freePort();
        const pidfile = join(tmp, `fpr-${port}.pids`);
        const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false, reporting, thp: { read: () => 'always', write: () => undefined } });
        const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', ...flags]);
        for (const p of await pidsFrom(pidfile)) process.kill(p, 'SIGKILL');
        expect(r.code, r.stderr).toBe(0);
        return (json(r).warnings as string[]).join('\n');
      };
      expect(await warningsOf(true, ['--huge-pages'])).toContain(FREE_PAGE_REPORTING_NOTE);
      expect(await warningsOf(false, ['--huge-pages'])).not.toMatch(/free page reporting/);
      expect(await warningsOf(true, [])).not.toMatch(/free page reporting/);
    });

    it('--prefetch reads the weights into the page cache alongside the restore (details.prefetch; two hooks, in order, one with a JSON body); refused (exit 2, nothing restored) without a hook or with a wrong path', async () => {
      const dir = join(tmp, 'prefetch-weights');
      writeTwoShards(dir);
      const hooks: string[] = [];
      const hook = createServer((req, res) => {
        let body = '';
        req.on('data', (c: Buffer) => (body += c.toString()));
        req.on('end', () => (hooks.push(`${req.method} ${req.url}${body ? ` ${body}` : ''}`), res.end('ok')));
      });
      await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
      const wake = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/wake_up`;
      try {
        const port = await freePort();
        const pidfile = join(tmp, 'prefetch.pids');
        // When the page-cache query over the weights runs, against when the restored server was ready: after it, so
        // that measuring the prefetch is no part of the restore's time.
        const events: string[] = [];
        const base = fakeNative({ gpu: () => false });
        const native: SnapshotNative = { ...base, residentBytes: async (paths) => (events.push(paths.some((p) => p.startsWith(dir)) ? 'resident: weights' : 'resident: image'), 2 * (1 << 20)) };
        const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
        const adopt = e.server.adopt;
        e.server = {
          ...e.server,
          adopt: (pid, opts) => {
            const h = adopt(pid, opts);
            return {
              ...h,
              waitReady: async (w) => {
                const ready = await h.waitReady(w);
                events.push('ready');
                return ready;
              },
            };
          },
        };
        const reload = `${wake.replace('/wake_up', '/collective_rpc')} {"method": "reload_weights"}`;
        const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', '--after-restore', wake, '--after-restore', reload, '--prefetch', dir, '--prefetch-threads', '1', '--verify-threads', '3']);
        expect(r.code, r.stderr).toBe(0);
        expect(json(r).details.verifyThreads).toBe(3);
        // Two after-restore requests, in order, the second with its JSON body; timed together as one phase.
        expect(hooks).toEqual(['POST /wake_up', 'POST /collective_rpc {"method": "reload_weights"}']);
        expect(json(r).details.afterRestore.map((h: { url: string }) => new URL(h.url).pathname)).toEqual(['/wake_up', '/collective_rpc']);
        expect(json(r).phases.find((p: { name: string }) => p.name === 'after-restore').seconds).toBeGreaterThan(0);
        const p = json(r).details.prefetch;
        expect(p).toMatchObject({ target: dir, files: 2, threads: 1, error: null, residentAfter: 2 * (1 << 20) });
        expect(events).toEqual(['resident: image', 'ready', 'resident: weights']);
        expect(p.seconds).toBeGreaterThanOrEqual(0);
        // Finished: every byte of the two files.
        expect(p).toMatchObject({ finished: true, bytes: 2 * ((1 << 20) + 8 + Buffer.byteLength(JSON.stringify({ w: { dtype: 'U8', shape: [1 << 20], data_offsets: [0, 1 << 20] } }))) });
        for (const q of await pidsFrom(pidfile)) process.kill(q, 'SIGKILL');
        // No hook in the image or on the command line: nothing would read the weights back (exit 2, CRIU never ran).
        const never = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), pidAlive: () => false, restore: async () => Promise.reject(new Error('must not run')) });
        const n = await run(never, 'restore', [image, '--json', '--prefetch', dir]);
        expect(n.code).toBe(2);
        expect(json(n).error.message).toMatch(/^--prefetch: .* has no --after-restore hook/);
        const missing = await run(never, 'restore', [image, '--json', '--after-restore', wake, '--prefetch', join(tmp, 'no-such-weights')]);
        expect(missing.code).toBe(2);
        expect(json(missing).error.message).toMatch(/^--prefetch: /);
        // --prefetch-threads: a whole number 1..64, and only beside --prefetch.
        for (const [args, msg] of [
          [['--prefetch', dir, '--after-restore', wake, '--prefetch-threads', '0'], /^--prefetch-threads: expected/],
          [['--prefetch-threads', '2'], /^--prefetch-threads: only with --prefetch/],
          // --verify-threads: a whole number 1..256
          [['--verify-threads', '0'], /^--verify-threads: expected/],
          [['--verify-threads', 'two'], /^--verify-threads: expected/],
          // a bad value is named before flags that do not go together
          [['--prefetch-threads', '2', '--verify-threads', 'two'], /^--verify-threads: expected/],
        ] as const) {
          const b = await run(never, 'restore', [image, '--json', ...args]);
          expect(b.code).toBe(2);
          expect(json(b).error.message).toMatch(msg);
        }
      } finally {
        hook.close();
      }
    });

    it("--stage: the weights put on the server's GPU beside CRIU, listed for coldstart_load while the hooks run (the real coldstart_load reads the entry: the same file identities), unlisted and freed once they answered; not staged, the restore going on, where the GPU has no room, the load fails or the directory is not this user's alone; refused (exit 2) without a hook or beside --prefetch", async () => {
      const dir = join(tmp, 'stage-weights');
      writeTwoShards(dir);
      const stageDir = join(tmp, 'stage-dir');
      // At each wake-up: what coldstart_load (the module the server imports) finds listed, by its own os.stat of the files.
      const seen: string[] = [];
      const hook = createServer((req, res) => {
        const listed = existsSync(stageDir) ? readdirSync(stageDir).filter((f) => f.endsWith('.json')) : [];
        const probe = spawn(py ?? 'python3', [fileURLToPath(new URL('./stage_seen.py', import.meta.url)), fileURLToPath(new URL('../../src/python', import.meta.url)), ...readdirSync(dir).map((f) => join(dir, f))], {
          env: { ...process.env, COLDSTART_STAGE_DIR: stageDir },
        });
        let out = '';
        probe.stdout.on('data', (c: Buffer) => (out += c.toString()));
        probe.on('close', () => (seen.push(`${listed.length} listed: ${out.trim()}`), res.end('ok')));
      });
      await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
      const wake = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/wake_up`;
      const restoreWith = async (native: SnapshotNative, extra: string[] = []) => {
        const port = await freePort();
        const pidfile = join(tmp, `stage-${seen.length}.pids`);
        const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
        const r = await runCommandWith(registerSnapshot, e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', '--after-restore', wake, '--stage', dir, ...extra], { env: { COLDSTART_STAGE_DIR: stageDir } });
        for (const q of await pidsFrom(pidfile)) process.kill(q, 'SIGKILL');
        return r;
      };
      try {
        const native = fakeNative({ gpu: () => false });
        const asked: Array<{ files: string[]; gpu: string }> = [];
        // Hardly any of the weights in the page cache: staged all the same, the rest read from the disk, said so.
        const r = await restoreWith({ ...native, residentBytes: async (paths) => (paths.some((p) => p.startsWith(dir)) ? 4096 : null), stage: (files, gpu, signal) => (asked.push({ files, gpu }), native.stage(files, gpu, signal)) });
        expect(r.code, r.stderr).toBe(0);
        expect(json(r).warnings).toEqual([expect.stringMatching(/^--stage: 4\.00 KiB of .*stage-weights was in the page cache; the rest was read from the disk beside CRIU \(for a cold disk, --prefetch/)]);
        // Onto the GPU the server comes back on (the image's, UUID_A), as the driver's 16 bytes in hex.
        expect(asked).toEqual([{ files: readdirSync(dir).map((f) => join(dir, f)).sort(), gpu: '0a1b2c3d4e5f60718293a4b5c6d7e8f9' }]);
        const files = readdirSync(dir).map((f) => join(dir, f));
        // Listed for the restored server's processes (the image's pids) only; found by coldstart_load in one of them.
        const pids = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8')).pids as number[];
        expect(seen).toEqual([`1 listed: ${JSON.stringify({ pids: [pids], found: files.sort().map((f) => [f, true]) })}`]);
        const st = json(r).details.stage;
        expect(st).toMatchObject({ target: dir, files: 2, gpu: '0a1b2c3d4e5f60718293a4b5c6d7e8f9', residentBefore: 4096, skipped: null });
        expect(st.bytes).toBe(files.reduce((a, f) => a + statSync(f).size, 0));
        expect(st.readyAt).toBeGreaterThan(0);
        expect(st.waitedSeconds).toBeGreaterThanOrEqual(0);
        // Unlisted and freed once the hook answered: nothing left in the directory, the copy let go of once.
        expect(readdirSync(stageDir)).toEqual([]);
        expect(native.calls.filter((c) => (c.action as string) === 'unstage')).toEqual([{ pid: 7, action: 'unstage' }]);
        expect((statSync(stageDir).mode & 0o777).toString(8)).toBe('700');

        // Too little free memory on the GPU for a copy beside the server and its weights again: not staged, said why.
        const full = fakeNative({ gpu: () => false, devices: [{ index: 0, name: 'Fake GPU', uuid: UUID_A, freeBytes: 10e9 }] });
        let called = 0;
        const f = await restoreWith({ ...full, stage: async () => (called++, Promise.reject(new Error('must not run'))) });
        expect(f.code, f.stderr).toBe(0);
        expect(called).toBe(0);
        expect(json(f).details.stage).toMatchObject({ bytes: 0, readyAt: null, skipped: expect.stringMatching(/free on the GPU; a copy of .* needs/) });
        expect(seen.at(-1)).toMatch(/^0 listed: \{"pids":\[\],/);

        // The load fails (no room after all): the restore goes on, the wake-up reading the files; nothing to free.
        const oom = fakeNative({ gpu: () => false });
        const o = await restoreWith({ ...oom, stage: async () => Promise.reject(new ColdstartError('GPU_OOM', 'GPU 0: cuMemAlloc of 1048576 bytes failed')) });
        expect(o.code, o.stderr).toBe(0);
        expect(json(o).details.stage.skipped).toMatch(/cuMemAlloc/);
        expect(oom.calls.filter((c) => (c.action as string) === 'unstage')).toEqual([]);
        expect(readdirSync(stageDir)).toEqual([]);

        // A directory others may write to is never used (coldstart_load would not read it): not listed, the copy freed.
        chmodSync(stageDir, 0o777);
        const open = fakeNative({ gpu: () => false });
        const w = await restoreWith(open);
        expect(w.code, w.stderr).toBe(0);
        expect(json(w).details.stage.skipped).toMatch(/writable by others/);
        expect(open.calls.filter((c) => (c.action as string) === 'unstage')).toEqual([{ pid: 7, action: 'unstage' }]);
        expect(readdirSync(stageDir)).toEqual([]);
        chmodSync(stageDir, 0o700);

        // Refused before anything is restored: no hook to read the weights back, or --prefetch beside it.
        const never = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), pidAlive: () => false, restore: async () => Promise.reject(new Error('must not run')) });
        const n = await run(never, 'restore', [image, '--json', '--stage', dir]);
        expect(n.code).toBe(2);
        expect(json(n).error.message).toMatch(/^--stage: .* has no --after-restore hook/);
        const both = await run(never, 'restore', [image, '--json', '--after-restore', wake, '--stage', dir, '--prefetch', dir]);
        expect(both.code).toBe(2);
        expect(json(both).error.message).toBe('--stage and --prefetch: one or the other');
        const missing = await run(never, 'restore', [image, '--json', '--after-restore', wake, '--stage', join(tmp, 'no-such-weights')]);
        expect(missing.code).toBe(2);
        expect(json(missing).error.message).toMatch(/^--stage: /);
      } finally {
        hook.close();
      }
    });

    it("--floor: after the server answered, the image read again from where the restore found it (page cache: one reader per core, best of two; cold: dropped first, one stream of 16 MiB) and the GPU state at pinned H2D on the GPU NVML lists the process on; each step's share, the total's ratio; a probe that fails is \"not measured\", never a failed restore; not asked: said so", async () => {
      const m = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8'));
      const imageBytes: number = m.imageBytes;
      const reads: Array<{ threads?: number; chunkBytes?: number; evictFirst?: boolean; files: string[] }> = [];
      const h2d: number[] = [];
      const floorNative = (resident: number, o: { h2dFails?: boolean } = {}): SnapshotNative => {
        const base = fakeNative({ gpu: () => false });
        return {
          ...base,
          residentBytes: async () => resident,
          // the restored GPU process on GPU 0, 6 GB of its own
          gpuMemory: async () => ({ available: true, driverVersion: '580.1', devices: [{ index: 0, name: 'Fake GPU', uuid: UUID_A, totalBytes: 80e9, freeBytes: 70e9, usedBytes: 10e9, processes: [{ pid: gpuPid, usedBytes: 6e9 }] }] }),
          h2dBytesPerSecond: async (d) => {
            if (o.h2dFails) throw new ColdstartError('GPU_OOM', 'pinned H2D of GPU 0: out of memory');
            return h2d.push(d), 40e9;
          },
          prefetch: async (p) => {
            reads.push({ files: p.files, threads: p.threads, chunkBytes: p.chunkBytes, evictFirst: p.evictFirst });
            const bytes = p.files.reduce((a, f) => a + statSync(f).size, 0);
            // the disk: 2 GB/s over what was dropped; the page cache: 20 GB/s
            const seconds = p.evictFirst ? bytes / 2e9 : bytes / 20e9;
            return { schema: 'coldstart/prefetch@1', strategy: 'pread', threads: p.threads ?? 1, bytes, seconds, bytesPerSecond: bytes / seconds, coldBytesPerSecond: p.evictFirst ? bytes / seconds : null, residency: { before: p.evictFirst ? 0 : 1, after: 1 }, fallbackBytes: 0, readvisedBytes: 0, files: [], notes: [] };
          },
        };
      };
      const restoreWith = async (native: SnapshotNative, args: string[]) => {
        const port = await freePort();
        const pidfile = join(tmp, `floor-${reads.length}-${h2d.length}.pids`);
        const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
        const r = await run(e, 'restore', [image, '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', ...args]);
        for (const q of await pidsFrom(pidfile)) process.kill(q, 'SIGKILL');
        expect(r.code, r.stderr).toBe(0);
        return r;
      };
      const imageFiles = m.files.map((f: { name: string }) => join(image, f.name));

      // The image in the page cache: read twice by one reader per core (at most 16), nothing dropped.
      const warm = json(await restoreWith(floorNative(imageBytes), ['--json', '--floor']));
      const f = warm.details.floor;
      expect(reads.map((r) => [r.evictFirst, r.chunkBytes])).toEqual([[undefined, 16 << 20], [undefined, 16 << 20]]);
      expect(reads[0]!.files).toEqual(imageFiles);
      expect(reads[0]!.threads).toBe(Math.min(16, availableParallelism()));
      expect(f).toMatchObject({ image: { from: 'page cache', bytes: imageBytes, bytesPerSecond: 20e9 }, weights: null, gpu: { bytes: expect.any(Number), bytesPerSecond: 40e9, how: 'pinned H2D on GPU 0' } });
      expect(h2d).toEqual([0]);
      expect(f.gpu.seconds).toBeCloseTo(f.gpu.bytes / 40e9, 12);
      expect(f.seconds).toBeCloseTo(imageBytes / 20e9 + f.gpu.seconds, 12);
      expect(f.ratio).toBeCloseTo(warm.total.seconds / f.seconds, 6);
      const phases = Object.fromEntries(warm.phases.map((p: { name: string }) => [p.name, p]));
      expect(phases['criu-restore'].floor.seconds).toBeCloseTo(imageBytes / 20e9, 12);
      expect(phases['gpu-restore'].floor.seconds).toBeCloseTo(f.gpu.seconds, 12);
      expect(phases['ready'].floor).toBeUndefined(); // the server's own work: no floor

      // From a cold disk: dropped first, one stream of 16 MiB reads; said in the human report.
      reads.length = 0;
      const cold = await restoreWith(floorNative(0), ['--floor']);
      expect(reads.map((r) => [r.evictFirst, r.threads, r.chunkBytes])).toEqual([[true, 1, 16 << 20]]);
      expect(cold.stdout).toMatch(/^floor \(this machine\): \S+ \S+; this restore took \d+\.\d\d× it \(.* to ready; the server's own ready wait and first answer have no floor\)$/m);
      expect(cold.stdout).toMatch(/^ {2}image \S+ \S+ at 2\.00 GB\/s \(from the disk, dropped from the page cache first, one stream of 16 MiB reads\) .*; GPU state \S+ \S+ at 40\.00 GB\/s \(pinned H2D on GPU 0\)/m);

      // A copy probe that fails: that part and the total "not measured", the restore itself done (exit 0).
      const failed = json(await restoreWith(floorNative(imageBytes, { h2dFails: true }), ['--json', '--floor'])).details.floor;
      expect(failed).toMatchObject({ gpu: { notMeasured: 'pinned H2D probe failed: pinned H2D of GPU 0: out of memory' }, seconds: null, ratio: null });

      // Not asked: nothing read again, and the report says why there is no floor.
      reads.length = 0;
      const plain = json(await restoreWith(floorNative(imageBytes), ['--json']));
      expect(plain.details.floor).toEqual({ notMeasured: 'not asked: --floor measures it after the restore' });
      expect(reads).toEqual([]);
    });

    it('a prefetch still reading is stopped as the first --after-restore hook is sent, before the server gets it (the server reads the rest itself: one stream at that place on the disk, not two); the report says so', async () => {
      const dir = join(tmp, 'prefetch-stop-weights');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([buildHeader([{ name: 'w', dtype: 'U8', shape: [4096] }]).bytes, Buffer.alloc(4096, 7)]));
      const events: string[] = [];
      const hook = createServer((req, res) => (events.push(`hook ${req.url}`), res.end('ok')));
      await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
      const wake = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/wake_up`;
      try {
        const base = fakeNative({ gpu: () => false });
        // A prefetch that reads until it is stopped (a disk slower than the restore).
        const native: SnapshotNative = {
          ...base,
          prefetch: (p) =>
            new Promise((_resolve, reject) => {
              events.push('prefetch started');
              p.signal!.addEventListener('abort', () => (events.push('prefetch stopped'), reject(new ColdstartError('INTERRUPTED', 'prefetch was cancelled'))), { once: true });
            }),
        };
        const port = await freePort();
        const pidfile = join(tmp, 'prefetch-stop.pids');
        const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
        const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', '--after-restore', wake, '--after-restore', `${wake}?second=1`, '--prefetch', dir]);
        for (const q of await pidsFrom(pidfile)) process.kill(q, 'SIGKILL');
        expect(r.code, r.stderr).toBe(0);
        expect(events).toEqual(['prefetch started', 'prefetch stopped', 'hook /wake_up', 'hook /wake_up?second=1']);
        const p = json(r).details.prefetch;
        expect(p).toMatchObject({ target: dir, files: 1, finished: false, bytes: null, error: null });
        expect(p.seconds).toBeGreaterThanOrEqual(0);
        expect(json(r).warnings).toEqual([]);
        const port2 = await freePort();
        const pidfile2 = join(tmp, 'prefetch-stop-text.pids');
        const e2 = engines({ native, clock: fakeClock(), restore: fakeRestore(port2, pidfile2), pidAlive: () => false });
        const text = await run(e2, 'restore', [image, '--ready-url', `http://127.0.0.1:${port2}/health`, '--no-first-request', '--after-restore', wake, '--prefetch', dir]);
        for (const q of await pidsFrom(pidfile2)) process.kill(q, 'SIGKILL');
        expect(text.code, text.stderr).toBe(0);
        expect(text.stdout).toMatch(/prefetch \(alongside, until the hook was sent\)/);
        expect(text.stdout).toMatch(/stopped after .*, when the after-restore hook was sent \(the server read the rest itself\)/);
      } finally {
        hook.close();
      }
    });

    it("an image mostly not in the page cache is read by one stream the verification follows, in the manifest's order, and the --prefetch weights only behind it (details.imageRead); a failed stream is a note; a cached image, or --no-image-stream, leaves the reading to the hash threads", async () => {
      const dir = join(tmp, 'stream-weights');
      mkdirSync(dir, { recursive: true });
      const n = 1 << 20;
      writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([buildHeader([{ name: 'w', dtype: 'U8', shape: [n] }]).bytes, Buffer.alloc(n, 7)]));
      const hook = createServer((_req, res) => res.end('ok'));
      await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()));
      const wake = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/wake_up`;
      const m = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8')) as { files: Array<{ name: string }>; imageBytes: number };
      const pageData = m.files.map((f) => f.name).filter((name) => /^pages-\d+\.img$/.test(name));
      expect(pageData.length).toBeGreaterThan(0);
      type Stream = 'done' | 'held' | 'fails';
      const cases: Array<{ stream: Stream; resident: number; args: string[]; streamed: boolean }> = [
        // cold: the stream finished, the weights read behind it
        { stream: 'done', resident: 0, args: [], streamed: true },
        // a stream still reading when the hook answered: the weights' prefetch never started beside it
        { stream: 'held', resident: 0, args: [], streamed: true },
        { stream: 'fails', resident: 0, args: [], streamed: true },
        // the image in the page cache, or --no-image-stream: the hash threads read it
        { stream: 'done', resident: m.imageBytes, args: [], streamed: false },
        { stream: 'done', resident: 0, args: ['--no-image-stream'], streamed: false },
      ];
      try {
        for (const c of cases) {
          const base = fakeNative({ gpu: () => false });
          const streams: string[][] = [];
          const native: SnapshotNative = {
            ...base,
            residentBytes: async (paths) => (paths.some((p) => p.startsWith(dir)) ? 0 : c.resident),
            readInOrder: (paths) => {
              streams.push(paths);
              const done = c.stream === 'done' ? Promise.resolve({ bytes: 4096, seconds: 0.01 }) : c.stream === 'fails' ? Promise.reject(new ColdstartError('IO', 'image read: pages-1.img: read failed at byte 0: Input/output error')) : new Promise<never>(() => undefined);
              return { read: () => (c.stream === 'held' ? 0 : Infinity), done };
            },
          };
          const port = await freePort();
          const pidfile = join(tmp, `stream-${c.stream}-${c.resident}-${c.args.length}.pids`);
          const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
          const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', '--after-restore', wake, '--prefetch', dir, ...c.args]);
          expect(r.code, r.stderr).toBe(0);
          const doc = json(r);
          for (const q of await pidsFrom(pidfile)) process.kill(q, 'SIGKILL');
          expect(streams.map((paths) => paths.map((p) => p.slice(p.lastIndexOf('/') + 1)))).toEqual(c.streamed ? [pageData] : []);
          const verify = doc.phases.find((p: { name: string }) => p.name === 'verify');
          if (!c.streamed) {
            expect(doc.details.imageRead).toEqual({ by: 'hash threads' });
            expect(verify.note).not.toMatch(/one stream/);
            expect(doc.details.prefetch).toMatchObject({ finished: true, error: null });
            continue;
          }
          expect(verify.note).toMatch(/read by one stream, hashed behind it/);
          if (c.stream === 'done') {
            expect(doc.details.imageRead).toEqual({ by: 'one stream', read: { bytes: 4096, seconds: 0.01 } });
            expect(doc.details.prefetch).toMatchObject({ finished: true, error: null });
          } else if (c.stream === 'held') {
            expect(doc.details.imageRead).toEqual({ by: 'one stream', read: null });
            expect(doc.details.prefetch).toMatchObject({ finished: false, bytes: null, error: null });
          } else {
            expect(doc.details.imageRead).toEqual({ by: 'one stream', read: null });
            expect(doc.warnings.join('\n')).toMatch(/reading the image by one stream failed \(the verification read it instead\): image read: pages-1\.img: read failed/);
            expect(doc.details.prefetch).toMatchObject({ finished: true, error: null });
          }
        }
      } finally {
        hook.close();
      }
    });

    it('a restore that never gets ready stops the whole restored tree (a setsid grandchild too) and removes its work dir', async () => {
      const port = await freePort();
      const pidfile = join(tmp, 'never.pids');
      const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
      const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${await freePort()}/health`, '--timeout', '1']);
      expect(r.code).toBe(3);
      expect(json(r).error.code).toBe('TIMEOUT');
      const [server, grandchild] = await pidsFrom(pidfile);
      expect(await gone([server, grandchild])).toEqual([]);
      expect(existsSync(works.at(-1)!)).toBe(false);
    });

    it('a restored server that died once resumed is explained where CRIU leaves the cause: SIGILL (its zombie\'s exit status), a CPU with AMX (no AMX permission given back); not otherwise', async () => {
      // The restored "server" exits at once (as one that died at its next AMX instruction); its ready URL never answers.
      const dying: SnapshotEngines['criu']['restore'] = async (_criu, _dir, work) => {
        works.push(work);
        const c = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 100)'], { detached: true, stdio: 'ignore' });
        c.unref();
        return c.pid!;
      };
      const cases = [
        { flags: ['fpu', 'avx512f', 'amx_tile'], ended: { ended: true, signal: 4 }, hint: /died of SIGILL \(an illegal instruction\)\. This CPU has Intel AMX: .*\(checkpoint-restore\/criu#1448\); restore gives it back through ptrace, and could not for this process/, details: { diedOf: 4, amx: true } },
        { flags: ['fpu', 'avx512f', 'amx_tile'], ended: { ended: true, signal: null }, hint: /is gone\. This CPU has Intel AMX: .* dies of SIGILL/, details: { amx: true } },
        { flags: ['fpu', 'avx2'], ended: { ended: true, signal: 4 }, hint: /died of SIGILL .* It used an instruction this CPU refused: restore on a machine whose CPU has the features/, details: { diedOf: 4, amx: false } },
        { flags: ['fpu', 'avx2'], ended: { ended: true, signal: null }, hint: null, details: null },
        { flags: ['fpu', 'amx_tile'], ended: { ended: false, signal: null }, hint: null, details: null },
      ];
      for (const c of cases) {
        // Where the CPU has AMX, the permission could not be given back (no ptrace rights here).
        const native = fakeNative({ gpu: () => false, amx: () => new ColdstartError('PERMISSION', 'pid 1: AMX permission: ptrace seize: Operation not permitted') });
        const e = engines({ native, clock: fakeClock(), restore: dying, pidAlive: () => false, cpuFlags: c.flags, ended: c.ended });
        const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${await freePort()}/health`, '--timeout', '20']);
        expect(r.code).toBe(3);
        const err = json(r).error;
        expect(err.code).toBe('ENV');
        expect(err.message).toMatch(/exited before it was ready/);
        if (c.hint) {
          expect(err.hint).toMatch(c.hint);
          expect(err.details).toMatchObject(c.details!);
        } else {
          expect(err.hint ?? '').not.toMatch(/AMX|SIGILL/);
          expect(err.details?.amx).toBeUndefined();
        }
      }
    });

    it.runIf(process.arch === 'x64')('on a CPU with AMX each restored process is resumed with the AMX permission given back (details.amx), failures said; nowhere else', async () => {
      const port = await freePort();
      for (const [flags, amx, want] of [
        [['fpu', 'amx_tile'], () => 0, { granted: true, failed: false }],
        [['fpu', 'amx_tile'], () => -28, { granted: false, failed: false }], // ENOSPC: it never had AMX
        [['fpu', 'amx_tile'], () => new ColdstartError('PERMISSION', 'pid 1: AMX permission: ptrace seize: Operation not permitted'), { granted: false, failed: true }],
        [['fpu', 'avx2'], () => 0, null],
      ] as const) {
        const pidfile = join(tmp, `amx-${works.length}.pids`);
        const native = fakeNative({ gpu: () => false, amx });
        const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false, cpuFlags: [...flags] });
        const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request']);
        expect(r.code, r.stderr).toBe(0);
        const doc = json(r);
        const [server, grandchild] = await pidsFrom(pidfile);
        if (want === null) {
          expect(native.amxCalls).toEqual([]);
          expect(doc.details.amx).toBeUndefined();
        } else {
          // Every pid the image recorded, in order (each before it is resumed).
          const pids = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8')).pids as number[];
          expect(native.amxCalls).toEqual(pids);
          expect(doc.details.amx.granted).toEqual(want.granted ? pids : []);
          expect(doc.details.amx.failed.map((f: { pid: number }) => f.pid)).toEqual(want.failed ? pids : []);
          if (want.failed) expect(doc.details.amx.failed[0].error).toMatch(/ptrace seize: Operation not permitted/);
          expect(doc.warnings.some((w: string) => /AMX permission not given back to pid .*checkpoint-restore\/criu#1448/.test(w))).toBe(want.failed);
        }
        process.kill(grandchild, 'SIGKILL');
        process.kill(server, 'SIGKILL');
        await gone([server, grandchild]);
      }
    });

    it("on a node whose GPU has another UUID: restored onto a GPU of the same model, the driver given the pair; refused, touching nothing, where none of the model is left, where it has too little free memory, or for a wrong --gpus", async () => {
      const port = await freePort();
      const pidfile = join(tmp, 'moved.pids');
      // Another node: GPU 0 is another model, GPU 1 the image's model with another UUID.
      const native = fakeNative({ gpu: () => false, devices: [{ index: 0, name: 'Other GPU', uuid: 'GPU-11111111-2222-3333-4444-555555555555' }, { index: 1, name: 'Fake GPU', uuid: UUID_B }] });
      // One NVML reading serves the fingerprint and the GPU plan.
      let readings = 0;
      const gpuMemory = native.gpuMemory;
      native.gpuMemory = () => (readings++, gpuMemory());
      const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
      const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request']);
      expect(r.code, r.stderr).toBe(0);
      expect(native.calls.filter((c) => c.action !== 'state')).toEqual([
        { pid: gpuPid, action: 'restore', gpuPairs: [['0a1b2c3d4e5f60718293a4b5c6d7e8f9', 'f9e8d7c6b5a4938271605f4e3d2c1b0a']] },
        { pid: gpuPid, action: 'unlock' },
      ]);
      expect(readings).toBe(1);
      expect(json(r).details.gpus).toEqual({ paired: true, moves: [{ from: { index: 0, name: 'Fake GPU', uuid: UUID_A }, to: { index: 1, name: 'Fake GPU', uuid: UUID_B } }] });
      const [server, grandchild] = await pidsFrom(pidfile);
      process.kill(grandchild, 'SIGKILL');
      process.kill(server, 'SIGKILL');
      await gone([server, grandchild]);

      const never = async () => Promise.reject(new Error('must not run'));
      const refused = async (devices: Device[], args: string[] = []) => {
        const n = fakeNative({ gpu: () => false, devices });
        const r2 = await run(engines({ native: n, clock: fakeClock(), restore: never, pidAlive: () => false }), 'restore', [image, '--json', ...args]);
        expect(n.calls.filter((c) => c.action !== 'state')).toEqual([]);
        return { code: r2.code, error: json(r2).error };
      };
      // No GPU of the model: the image's GPU named, and what is here.
      expect(await refused([{ index: 0, name: 'Other GPU', uuid: UUID_B }])).toMatchObject({ code: 3, error: { code: 'NO_GPU', message: expect.stringMatching(/used GPU 0 \(Fake GPU, GPU-0a1b2c3d.*no Fake GPU left to restore it onto \(GPU 0 \(Other GPU/) } });
      // The same GPU, but 5 GB free where the server held 9 GB on it.
      expect(await refused([{ index: 0, name: 'Fake GPU', uuid: UUID_A, freeBytes: 5e9 }])).toMatchObject({ code: 3, error: { code: 'ENV', details: { freeBytes: 5e9, needBytes: 9e9 } } });
      // --gpus: one GPU for each the image used, of this machine, of the same model.
      expect(await refused([{ index: 0, name: 'Fake GPU', uuid: UUID_A }], ['--gpus', '0,1'])).toMatchObject({ code: 2, error: { code: 'BAD_FLAG', message: expect.stringMatching(/^--gpus: expected 1 GPU, one for each the image used/) } });
      expect(await refused([{ index: 0, name: 'Fake GPU', uuid: UUID_A }], ['--gpus', '3'])).toMatchObject({ code: 2, error: { message: '--gpus: expected indexes (0) or UUIDs of this machine\'s GPUs, got "3"' } });
      expect(await refused([{ index: 0, name: 'Other GPU', uuid: UUID_B }, { index: 1, name: 'Fake GPU', uuid: UUID_A }], ['--gpus', UUID_B])).toMatchObject({ code: 2, error: { code: 'UNSUPPORTED', message: expect.stringMatching(/onto GPU 0 \(Other GPU.*another model/) } });
    });

    it('--gpus naming the same GPU hands the driver the identity pair (the path a remap takes, on one GPU)', async () => {
      const port = await freePort();
      const pidfile = join(tmp, 'same.pids');
      const native = fakeNative({ gpu: () => false });
      const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
      const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`, '--no-first-request', '--gpus', UUID_A.toUpperCase()]);
      expect(r.code, r.stderr).toBe(0);
      expect(native.calls.find((c) => c.action === 'restore')).toEqual({ pid: gpuPid, action: 'restore', gpuPairs: [['0a1b2c3d4e5f60718293a4b5c6d7e8f9', '0a1b2c3d4e5f60718293a4b5c6d7e8f9']] });
      expect(json(r).details.gpus.paired).toBe(true);
      const [server, grandchild] = await pidsFrom(pidfile);
      process.kill(grandchild, 'SIGKILL');
      process.kill(server, 'SIGKILL');
      await gone([server, grandchild]);
    });

    it('a GPU restore that fails stops the restored tree too', async () => {
      const port = await freePort();
      const pidfile = join(tmp, 'gpufail.pids');
      const native = fakeNative({ gpu: () => false, failOn: (c) => c.action === 'restore' });
      const e = engines({ native, clock: fakeClock(), restore: fakeRestore(port, pidfile), pidAlive: () => false });
      const r = await run(e, 'restore', [image, '--json', '--ready-url', `http://127.0.0.1:${port}/health`]);
      expect(r.code).toBe(3);
      expect(json(r).error.details.nativeCode).toBe('CUDA_ERROR_ILLEGAL_STATE');
      expect(await gone(await pidsFrom(pidfile))).toEqual([]);
    });

    it('a CRIU restore that fails keeps the work dir its error names (restore.log), and only then', async () => {
      const e = engines({
        native: fakeNative({ gpu: () => false }),
        clock: fakeClock(),
        pidAlive: () => false,
        restore: async (_c, _dir, work) => {
          writeFileSync(join(work, 'restore.log'), 'Error (criu/cr-restore.c:1): Restoring FAILED.\n');
          throw new ColdstartError('ENV', 'criu restore failed: Restoring FAILED.', { details: { log: join(work, 'restore.log') } });
        },
      });
      const r = await run(e, 'restore', [image, '--json']);
      expect(r.code).toBe(3);
      const log = json(r).error.details.log as string;
      expect(readFileSync(log, 'utf8')).toContain('Restoring FAILED');
      rmSync(dirname(log), { recursive: true });
    });

    it('refuses, touching nothing, when a recorded pid is in use (exit 3, the pids in details) or without root', async () => {
      const e = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), pidAlive: (p) => p === gpuPid, restore: async () => Promise.reject(new Error('must not run')) });
      const r = await run(e, 'restore', [image, '--json']);
      expect(r.code).toBe(3);
      expect(json(r).error).toMatchObject({ code: 'ENV', details: { pids: [gpuPid] } });
      const noRoot = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), root: false, restore: async () => Promise.reject(new Error('must not run')) });
      const r2 = await run(noRoot, 'restore', [image, '--json']);
      expect(r2.code).toBe(3);
      expect(json(r2).error.code).toBe('PERMISSION');
      // Where the kernel forbids CRIU to seize the tasks it restores (Yama 3): refused before CRIU runs, said why.
      const yama3 = engines({ native: fakeNative({ gpu: () => false }), clock: fakeClock(), pidAlive: () => false, permissions: { sysPtrace: true, sysAdmin: true, seccomp: 0, ptraceScope: 3 }, restore: async () => Promise.reject(new Error('must not run')) });
      const r3 = await run(yama3, 'restore', [image, '--json']);
      expect(r3.code).toBe(3);
      expect(json(r3).error).toMatchObject({ code: 'ENV', message: expect.stringMatching(/^restore: CRIU would be refused here: kernel\.yama\.ptrace_scope is 3/), hint: 'Nothing was restored.', details: { permissions: { ptraceScope: 3 } } });
    });
  });
});

describe('park / unpark with a stand-in driver', () => {
  it('park locks then checkpoints and reports both steps; unpark restores then unlocks', async () => {
    const native = fakeNative({ gpu: () => true });
    const e = engines({ native, clock: fakeClock() });
    const r = await run(e, 'park', [String(process.pid), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r).phases.map((p: { name: string; seconds: number }) => [p.name, p.seconds])).toEqual([
      ['gpu-lock', 0.25],
      ['gpu-checkpoint', 0.25],
    ]);
    expect(native.calls.map((c) => c.action)).toEqual(['state', 'lock', 'checkpoint']);
    const un = fakeNative({ gpu: () => true, state: 'checkpointed' });
    const r2 = await run(engines({ native: un, clock: fakeClock() }), 'unpark', [String(process.pid), '--json']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(un.calls.map((c) => c.action)).toEqual(['state', 'restore', 'unlock']);
  });

  it("unpark --floor: the process's GPU memory NVML lists right after the unlock, at pinned H2D on its GPU, against the driver's restore + unlock; NVML without it: not measured; park has no such flag", async () => {
    const nvml = (listed: boolean) => async () => ({ available: true, driverVersion: '580.1', devices: [{ index: 0, name: 'Fake GPU', uuid: UUID_A, totalBytes: 80e9, freeBytes: 60e9, usedBytes: 20e9, processes: listed ? [{ pid: process.pid, usedBytes: 16e9 }] : [] }, { index: 1, name: 'Fake GPU', uuid: UUID_B, totalBytes: 80e9, freeBytes: 80e9, usedBytes: 0, processes: [] }] });
    const probed: number[] = [];
    const un: SnapshotNative = { ...fakeNative({ gpu: () => true, state: 'checkpointed' }), gpuMemory: nvml(true), h2dBytesPerSecond: async (d) => (probed.push(d), 50e9) };
    const r = await run(engines({ native: un, clock: fakeClock() }), 'unpark', [String(process.pid), '--json', '--floor']);
    expect(r.code, r.stderr).toBe(0);
    const doc = json(r);
    expect(probed).toEqual([0]);
    expect(doc.details.floor).toMatchObject({ gpu: { bytes: 16e9, bytesPerSecond: 50e9, how: 'pinned H2D on GPU 0' } });
    expect(doc.details.floor.gpu.seconds).toBeCloseTo(0.32, 12);
    expect(doc.details.floor.ratio).toBeCloseTo(0.5 / 0.32, 12); // restore 0.25 + unlock 0.25 (the stand-in's)
    expect(doc.phases.find((p: { name: string }) => p.name === 'gpu-restore').floor.seconds).toBeCloseTo(0.32, 12);
    const human = await run(engines({ native: { ...un, gpuMemory: nvml(true) }, clock: fakeClock() }), 'unpark', [String(process.pid), '--floor']);
    expect(human.stdout).toMatch(/^floor: GPU memory 14\.9 GiB at 50\.00 GB\/s \(pinned H2D on GPU 0\) 320 ms; the driver's restore \+ unlock took 500 ms, 1\.56× it$/m);
    const unlisted = await run(engines({ native: { ...un, gpuMemory: nvml(false) }, clock: fakeClock() }), 'unpark', [String(process.pid), '--json', '--floor']);
    expect(json(unlisted).details.floor).toEqual({ gpu: { notMeasured: `the GPU memory NVML lists for pid ${process.pid} is not known` }, ratio: null });
    const plain = await run(engines({ native: un, clock: fakeClock() }), 'unpark', [String(process.pid), '--json']);
    expect(json(plain).details.floor).toEqual({ notMeasured: 'not asked: --floor measures it after the unpark' });
    await expect(run(engines({ native: fakeNative({ gpu: () => true }), clock: fakeClock() }), 'park', [String(process.pid), '--json', '--floor'])).rejects.toThrow(/unknown option '--floor'/);
  });

  it('a checkpoint that fails unlocks again and says so (exit 3, the native code kept)', async () => {
    const native = fakeNative({ gpu: () => true, failOn: (c) => c.action === 'checkpoint' });
    const r = await run(engines({ native, clock: fakeClock() }), 'park', [String(process.pid), '--json']);
    expect(r.code).toBe(3);
    expect(json(r).error).toMatchObject({ code: 'ENV', details: { nativeCode: 'CUDA_ERROR_ILLEGAL_STATE' } });
    expect(native.calls.map((c) => c.action)).toEqual(['state', 'lock', 'checkpoint', 'unlock']);
  });

  it('park --huge-pages: THP is "always" while the driver checkpoints, put back after, also when the checkpoint fails; unpark has no such flag', async () => {
    let mode: 'always' | 'madvise' | 'never' | null = 'never';
    const thp = { read: () => mode, write: (m: 'always' | 'madvise' | 'never') => void (mode = m) };
    const seen: Array<string | null> = [];
    const watch = (n: ReturnType<typeof fakeNative>): ReturnType<typeof fakeNative> => ({ ...n, checkpoint: async (pid, action, t) => (action === 'checkpoint' && seen.push(mode), n.checkpoint(pid, action, t)) });
    const r = await run(engines({ native: watch(fakeNative({ gpu: () => true })), clock: fakeClock(), thp }), 'park', [String(process.pid), '--json', '--huge-pages']);
    expect(r.code, r.stderr).toBe(0);
    expect([seen, mode]).toEqual([['always'], 'never']);
    expect(json(r).details.hugePages).toEqual({ before: 'never', during: 'always', putBack: true });
    const f = await run(engines({ native: watch(fakeNative({ gpu: () => true, failOn: (c) => c.action === 'checkpoint' })), clock: fakeClock(), thp }), 'park', [String(process.pid), '--json', '--huge-pages']);
    expect(f.code).toBe(3);
    expect([seen.at(-1), mode]).toEqual(['always', 'never']);
    // Without the flag nothing is read or written; unpark has no such flag (the CLI's usage error).
    const plain = await run(engines({ native: fakeNative({ gpu: () => true }), clock: fakeClock(), thp: { read: () => { throw new Error('read'); }, write: () => { throw new Error('write'); } } }), 'park', [String(process.pid), '--json']);
    expect(plain.code, plain.stderr).toBe(0);
    expect(json(plain).details.hugePages).toBeUndefined();
    await expect(run(engines({ native: fakeNative({ gpu: () => true, state: 'checkpointed' }), clock: fakeClock(), thp }), 'unpark', [String(process.pid), '--json', '--huge-pages'])).rejects.toThrow(/unknown option '--huge-pages'/);
  });

  it('--before-park is sent before the lock and --after-unpark after the unlock, each timed; a failing hook stops park before any lock and names the flag (exit 3)', async () => {
    const seen: string[] = [];
    let status = 200;
    const srv = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push(`${req.method} ${req.url}${body ? ` ${body}` : ''}`);
        res.writeHead(status).end(status === 200 ? 'ok' : 'no');
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const log = (n: ReturnType<typeof fakeNative>): ReturnType<typeof fakeNative> => ({ ...n, checkpoint: async (pid, action, t) => (seen.push(action), n.checkpoint(pid, action, t)) });
      const r = await run(engines({ native: log(fakeNative({ gpu: () => true })), clock: fakeClock() }), 'park', [String(process.pid), '--json', '--before-park', `${base}/sleep?level=2`]);
      expect(r.code, r.stderr).toBe(0);
      expect(seen).toEqual(['state', 'POST /sleep?level=2', 'lock', 'checkpoint']);
      expect(json(r).phases.map((p: { name: string }) => p.name)).toEqual(['before-park', 'gpu-lock', 'gpu-checkpoint']);
      expect(json(r).details.hooks).toEqual([{ flag: '--before-park', method: 'POST', url: `${base}/sleep?level=2`, seconds: expect.any(Number) }]);
      seen.length = 0;
      const u = await run(engines({ native: log(fakeNative({ gpu: () => true, state: 'checkpointed' })), clock: fakeClock() }), 'unpark', [String(process.pid), '--json', '--after-unpark', `${base}/wake_up`, '--after-unpark-method', 'get']);
      expect(u.code, u.stderr).toBe(0);
      expect(seen).toEqual(['state', 'restore', 'unlock', 'GET /wake_up']);
      expect(json(u).phases.map((p: { name: string }) => p.name)).toEqual(['gpu-restore', 'gpu-unlock', 'after-unpark']);
      // Repeatable, in order, a JSON body after the URL (vLLM's level 2: wake up, then reload the weights).
      seen.length = 0;
      const u2 = await run(engines({ native: fakeNative({ gpu: () => true, state: 'checkpointed' }), clock: fakeClock() }), 'unpark', [String(process.pid), '--json', '--after-unpark', `${base}/wake_up`, '--after-unpark', `${base}/collective_rpc {"method": "reload_weights"}`]);
      expect(u2.code, u2.stderr).toBe(0);
      expect(seen).toEqual(['POST /wake_up', 'POST /collective_rpc {"method": "reload_weights"}']);
      expect(json(u2).details.hooks.map((h: { url: string }) => h.url)).toEqual([`${base}/wake_up`, `${base}/collective_rpc`]);
      // Text after the URL that is not JSON: a usage error naming the flag, nothing sent (exit 2).
      seen.length = 0;
      const bad = await run(engines({ native: fakeNative({ gpu: () => true, state: 'checkpointed' }), clock: fakeClock() }), 'unpark', [String(process.pid), '--json', '--after-unpark', `${base}/collective_rpc {method: reload}`]);
      expect(bad.code).toBe(2);
      expect(json(bad).error.message).toMatch(/--after-unpark/);
      expect(seen).toEqual([]);
      // A hook that answers an error: park touches nothing on the GPU; unpark says the GPU state is back.
      status = 500;
      seen.length = 0;
      const f = await run(engines({ native: log(fakeNative({ gpu: () => true })), clock: fakeClock() }), 'park', [String(process.pid), '--json', '--before-park', `${base}/sleep`]);
      expect(f.code).toBe(3);
      expect(json(f).error.message).toMatch(/^--before-park: POST .*\/sleep answered HTTP 500/);
      expect(seen).toEqual(['state', 'POST /sleep']);
      const g = await run(engines({ native: fakeNative({ gpu: () => true, state: 'checkpointed' }), clock: fakeClock() }), 'unpark', [String(process.pid), '--json', '--after-unpark', `${base}/wake_up`]);
      expect(g.code).toBe(3);
      expect(json(g).error.message).toMatch(/is back on the GPU, but --after-unpark: POST .*\/wake_up answered HTTP 500/);
      // A lock that fails after the hook put the server to sleep says how to wake it.
      status = 200;
      const h = await run(engines({ native: fakeNative({ gpu: () => true, failOn: (c) => c.action === 'lock' }), clock: fakeClock() }), 'park', [String(process.pid), '--json', '--before-park', `${base}/sleep`]);
      expect(h.code).toBe(3);
      expect(json(h).error.hint).toMatch(/--before-park\) first: send it its wake-up request/);
      // A malformed hook URL is a usage error before anything is sent (exit 2).
      expect((await run(engines({ native: fakeNative({ gpu: () => true }), clock: fakeClock() }), 'park', [String(process.pid), '--json', '--before-park', 'ftp://x/'])).code).toBe(2);
    } finally {
      srv.close();
    }
  });

  it('park of a process already parked is refused (exit 2) before any change', async () => {
    const native = fakeNative({ gpu: () => true, state: 'checkpointed' });
    const r = await run(engines({ native, clock: fakeClock() }), 'park', [String(process.pid), '--json']);
    expect(r.code).toBe(2);
    expect(json(r).error).toMatchObject({ code: 'BAD_INPUT', details: { state: 'checkpointed' } });
    expect(native.calls.map((c) => c.action)).toEqual(['state']);
  });
});

