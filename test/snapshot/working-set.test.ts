/**
 * The server's working set of its files (src/snapshot/working-set.ts) and the /proc readers under it
 * (src/platform/procfs.ts parseFileMappings, mappedFilePages): checked against the kernel's own maps and pagemap of a
 * live process that maps files in the ways a server does (a name with a space, a deleted file, memfd, /dev/zero),
 * against a hand-written /proc, and the manifest's check of a recorded working set against hostile values.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { filePagesPresent, mappedFilePages, parseFileMappings } from '../../src/platform/procfs.js';
import { loadNative, requireNative } from '../../src/native.js';
import { learningHere } from '../../src/snapshot/doctor.js';
import { evictableDir, residentBytes, writeOnDisk } from '../helpers/pagecache.js';
import { coalesce, planWorkingSet, recordWorkingSet, statEachOnce, WORKING_SET_GAP, WORKING_SET_MAX_FILES } from '../../src/snapshot/working-set.js';
import { validateManifest } from '../../src/snapshot/manifest.js';

const tmp = mkdtempSync(join(tmpdir(), 'cs-ws-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const PAGE = 4096;

/** A process that maps 96 pages of a 128-page file from page 16 on and reads pages 16 and 56, plus a deleted file, a
 * memfd and /dev/zero; it prints "ready" once they are mapped. */
const CHILD = `
import mmap, os, sys, time
d = sys.argv[1]
p = os.path.join(d, "lib with space.so")
with open(p, "wb") as f:
    f.write(os.urandom(128 * 4096))
m = mmap.mmap(os.open(p, os.O_RDONLY), 96 * 4096, prot=mmap.PROT_READ, offset=16 * 4096)
_ = m[0] + m[40 * 4096]
q = os.path.join(d, "gone.so")
with open(q, "wb") as f:
    f.write(b"x" * 8192)
g = mmap.mmap(os.open(q, os.O_RDONLY), 8192, prot=mmap.PROT_READ)
_ = g[0]
os.unlink(q)
z = mmap.mmap(os.open("/dev/zero", os.O_RDONLY), 4096, prot=mmap.PROT_READ)
mf = os.memfd_create("cs-memfd")
os.ftruncate(mf, 4096)
k = mmap.mmap(mf, 4096)
k[0] = 1
print("ready", flush=True)
time.sleep(60)
`;

describe("the kernel's maps and pagemap of a live process", () => {
  it('names the mapped regular files (a space in the name kept; deleted files, memfd, /dev/* left out) and the file offsets of their present pages', async () => {
    const d = join(tmp, 'live');
    mkdirSync(d);
    const py = spawn('python3', ['-c', CHILD, d], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((r) => py.stdout.once('data', () => r()));
      const maps = readFileSync(`/proc/${py.pid}/maps`, 'utf8');
      expect(maps).toContain('(deleted)'); // the input holds every kind the parser must leave out
      expect(maps).toContain('/dev/zero');
      expect(maps).toContain('/memfd:cs-memfd');
      const paths = parseFileMappings(maps).map((x) => x.path);
      const lib = join(d, 'lib with space.so');
      expect(paths).toContain(lib);
      expect(paths.some((p) => p.includes('gone.so') || p.startsWith('/dev/') || p.startsWith('/memfd:'))).toBe(false);
      const mine = parseFileMappings(maps).find((x) => x.path === lib)!;
      expect(mine.offset).toBe(16 * PAGE);
      expect(mine.end - mine.start).toBe(96 * PAGE);

      const got = mappedFilePages(py.pid!)!;
      const runs = got.filter((x) => x.path === lib).flatMap((x) => x.runs);
      const has = (page: number) => runs.some(([off, len]) => off <= page * PAGE && page * PAGE < off + len);
      // The two pages read are present, at their file offsets (the mapping starts at file page 16); the kernel's
      // fault-around (64 KiB) may map neighbours, never page 90, far from both.
      expect([has(16), has(56), has(90)]).toEqual([true, true, false]);
      for (const [off, len] of runs) expect([off % PAGE, len % PAGE, off >= 16 * PAGE, off + len <= 112 * PAGE]).toEqual([0, 0, true, true]);
      expect(got.some((x) => x.path.includes('gone.so'))).toBe(false);
      // The working set of this process: that file with those pages, coalesced; the interpreter's own files too.
      const ws = recordWorkingSet([py.pid!])!;
      const f = ws.files.find((x) => x.path === lib)!;
      expect(f).toMatchObject({ bytes: 128 * PAGE, mtimeMs: statSync(lib).mtimeMs });
      expect(f.ranges.length % 2).toBe(0);
      expect(ws.files.length).toBeGreaterThan(1);
    } finally {
      py.kill('SIGKILL');
    }
  });

  it('an unreadable process (gone) gives null, never an empty working set', () => {
    expect(mappedFilePages(1 << 22)).toBeNull();
    expect(recordWorkingSet([1 << 22])).toBeNull();
  });
});

/**
 * A process that maps 256 pages of a file privately (as the loader maps a library) and reads pages 0, 100 and 200;
 * it writes into page 150 (a private copy: anonymous memory, never a file page) and then, for each line "N" on its
 * stdin, prints the first byte of page N (and page 150's) — snapshot's page-out and second warmup, in small.
 */
const TOUCHER = `
import mmap, os, sys
m = mmap.mmap(os.open(sys.argv[1], os.O_RDONLY), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
m.madvise(mmap.MADV_RANDOM)
_ = m[0] + m[100 * 4096] + m[200 * 4096]
m[150 * 4096] = 77
print("ready", flush=True)
for line in sys.stdin:
    n = int(line)
    print(m[n * 4096], m[150 * 4096], flush=True)
`;

/** The bytes of address, length pairs. */
const bytesOf = (ranges: number[]): number => ranges.filter((_, i) => i % 2 === 1).reduce((a, b) => a + b, 0);

/**
 * The addon's pageOut of these ranges of `pid`, or null where the kernel refused it for want of CAP_SYS_NICE — only
 * when not root, and the error says so (snapshot turns it into a note).
 */
async function pageOutUnlessRefused(pid: number, ranges: number[]): Promise<{ bytes: number; skipped: number; seconds: number } | null> {
  try {
    return await requireNative('test').pageOut({ pid, ranges: Float64Array.from(ranges) });
  } catch (e) {
    expect(process.getuid?.()).not.toBe(0);
    expect(e).toMatchObject({ code: 'PERMISSION', message: expect.stringMatching(/process_madvise\(MADV_PAGEOUT, pid \d+\): Operation not permitted/) });
    return null;
  }
}

describe("snapshot's narrowing of the working set on the real kernel (process_madvise MADV_PAGEOUT)", () => {
  it("pages out a live process's file pages, and only those: none present after, its private copy kept, the pages it touches again present again", async () => {
    const d = await evictableDir();
    const lib = join(d, 'lib.so');
    const body = Buffer.alloc(256 * PAGE);
    for (let p = 0; p < 256; p++) body[p * PAGE] = p;
    writeOnDisk(lib, body); // the kernel pages out clean pages only (a dirty one waits for writeback)
    const py = spawn('python3', ['-c', TOUCHER, lib], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines: string[] = [];
    let partial = ''; // a line may come in pieces (PYTHONUNBUFFERED=1 writes each of print's parts on its own)
    let waiting: (() => void) | null = null;
    py.stdout.setEncoding('utf8').on('data', (t: string) => {
      const parts = (partial + t).split('\n');
      partial = parts.pop()!;
      lines.push(...parts.filter(Boolean));
      waiting?.();
    });
    const nextLine = async (): Promise<string> => {
      while (!lines.length) await new Promise<void>((r) => (waiting = r));
      return lines.shift()!;
    };
    const present = (page: number) => mappedFilePages(py.pid!)!.filter((x) => x.path === lib).flatMap((x) => x.runs).some(([off, len]) => off <= page * PAGE && page * PAGE < off + len);
    try {
      expect(await nextLine()).toBe('ready');
      const mine = parseFileMappings(readFileSync(`/proc/${py.pid}/maps`, 'utf8')).find((x) => x.path === lib)!;
      const ranges = filePagesPresent(py.pid!)!;
      const has = (page: number) => ranges.some((v, i) => i % 2 === 0 && v <= mine.start + page * PAGE && mine.start + page * PAGE < v + ranges[i + 1]!);
      // Pages read are file pages; the page written is the process's own copy (anonymous memory): not listed.
      expect([has(0), has(100), has(200), has(150), has(50)]).toEqual([true, true, true, false, false]);
      expect(present(150)).toBe(true); // pagemap has it present, just not as a file page
      const before = await residentBytes(lib);
      const r = await pageOutUnlessRefused(py.pid!, ranges);
      if (!r) return;
      expect(r.bytes).toBe(bytesOf(ranges));
      expect(r.skipped).toBe(0);
      // Mapped by this process alone, the file's pages are unmapped from it (the kernel reclaims from the page cache
      // what it can: on the dev VM a whole 2 MiB folio the process mapped, not the small folios of this 1 MiB file).
      expect([present(0), present(100), present(200)]).toEqual([false, false, false]);
      expect(await residentBytes(lib)).toBeLessThanOrEqual(before);
      // Nothing lost: the page it touches again reads the file's byte, its private copy still holds what it wrote.
      py.stdin.write('100\n');
      expect(await nextLine()).toBe('100 77');
      expect([present(100), present(0), present(200), present(150)]).toEqual([true, false, false, true]);
    } finally {
      py.kill('SIGKILL');
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('an unprivileged caller is refused: PERMISSION naming process_madvise (as nobody through setpriv where the tests run as root)', () => {
    const n = loadNative();
    if (!n.ok) throw new Error(n.reason);
    const d = mkdtempSync(join(tmpdir(), 'cs-pageout-'));
    try {
      chmodSync(d, 0o755); // nobody reads the addon and the script from here
      const addon = join(d, 'coldstart.node');
      const script = join(d, 'page-out-caller.cjs');
      copyFileSync(n.path, addon);
      copyFileSync(fileURLToPath(new URL('../helpers/page-out-caller.cjs', import.meta.url)), script);
      const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] : [];
      const [cmd, ...args] = [...asNobody, process.execPath, script, addon];
      const r = spawnSync(cmd!, args, { encoding: 'utf8', timeout: 20_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ code: 'PERMISSION', message: expect.stringMatching(/^process_madvise\(MADV_PAGEOUT, pid \d+\): Operation not permitted/) });
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('leaves a page another process maps too (the kernel pages out only what one process maps alone): a server of several processes narrows less', async () => {
    const d = await evictableDir();
    const lib = join(d, 'shared.so');
    writeOnDisk(lib, Buffer.alloc(256 * PAGE, 1));
    const start = async () => {
      const p = spawn('python3', ['-c', TOUCHER, lib], { stdio: ['pipe', 'pipe', 'inherit'] });
      await new Promise<void>((r) => p.stdout.once('data', () => r()));
      return p;
    };
    const [a, b] = [await start(), await start()];
    const presentPages = (pid: number) => mappedFilePages(pid)!.filter((x) => x.path === lib).flatMap((x) => x.runs).reduce((n, [, len]) => n + len / PAGE, 0);
    try {
      const before = [presentPages(a.pid!), presentPages(b.pid!)];
      expect(before[0]).toBeGreaterThan(3); // pages 0, 100, 200 (and what the kernel maps around them), page 150 copied
      if (!(await pageOutUnlessRefused(a.pid!, filePagesPresent(a.pid!)!))) return;
      expect([presentPages(a.pid!), presentPages(b.pid!)]).toEqual(before);
    } finally {
      a.kill('SIGKILL');
      b.kill('SIGKILL');
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("a process that locked its memory (mlockall): the kernel refuses every range, counted as skipped, nothing paged out and nothing failed", async () => {
    const d = await evictableDir();
    const lib = join(d, 'locked.so');
    writeFileSync(lib, Buffer.alloc(64 * PAGE, 1));
    const code = `
import ctypes, mmap, os, sys
m = mmap.mmap(os.open(sys.argv[1], os.O_RDONLY), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
_ = m[0]
print("ready" if ctypes.CDLL(None, use_errno=True).mlockall(1) == 0 else "nolock", flush=True)
sys.stdin.read()
`;
    const py = spawn('python3', ['-c', code, lib], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      const first = await new Promise<string>((r) => py.stdout.once('data', (b: Buffer) => r(b.toString().trim())));
      expect(first).toBe(process.getuid?.() === 0 ? 'ready' : first); // root may always lock; others as RLIMIT_MEMLOCK allows
      const ranges = filePagesPresent(py.pid!)!;
      const total = bytesOf(ranges);
      const r = await pageOutUnlessRefused(py.pid!, ranges);
      if (!r) return;
      if (first === 'ready') expect(r).toMatchObject({ bytes: 0, skipped: total });
      else expect(r.bytes + r.skipped).toBe(total);
    } finally {
      py.kill('SIGKILL');
      rmSync(d, { recursive: true, force: true });
    }
  });

  it("doctor says whether snapshot can learn here, and why not: an old kernel, no CAP_SYS_NICE", () => {
    expect(learningHere('6.18.44-fc-v1272-gpu', true)).toEqual({ available: true });
    expect(learningHere('5.4.0-150-generic', true)).toEqual({ available: false, reason: 'Linux 5.4.0-150-generic has no process_madvise (5.10 or newer has)' });
    expect(learningHere('6.8.0', false)).toMatchObject({ available: false, reason: expect.stringMatching(/lacks CAP_SYS_NICE/) });
    expect(learningHere('6.8.0', null)).toMatchObject({ available: true, reason: expect.stringMatching(/not read/) });
    expect(learningHere('unknown', true)).toMatchObject({ available: false, reason: expect.stringMatching(/release "unknown" was not read/) });
  });

  it('pageOut validates its arguments before any syscall; a pid that does not exist is NOT_FOUND', async () => {
    const a = requireNative('test');
    const pid = (1 << 22) - 3; // no such process: an argument that got through would be NOT_FOUND, never a page-out
    expect(() => a.pageOut({ pid: 0, ranges: new Float64Array([4096, 4096]) })).toThrow(/pid expected a whole number/);
    expect(() => a.pageOut({ pid, ranges: [4096, 4096] as unknown as Float64Array })).toThrow(/ranges expected a Float64Array/);
    expect(() => a.pageOut({ pid, ranges: new Float64Array([4096]) })).toThrow(/ranges expected a Float64Array of address, length pairs/);
    expect(() => a.pageOut({ pid, ranges: new Float64Array([4097, 4096]) })).toThrow(/page-aligned, non-empty ranges/);
    expect(() => a.pageOut({ pid, ranges: new Float64Array([4096, 0]) })).toThrow(/page-aligned, non-empty ranges/);
    expect(() => a.pageOut({ pid, ranges: new Float64Array([2 ** 53 - 4096, 8192]) })).toThrow(/ranges\[0\]/);
    expect(() => a.pageOut({ pid, ranges: new Float64Array([-4096, 4096]) })).toThrow(/ranges\[0\] expected a whole number/);
    await expect(a.pageOut({ pid, ranges: new Float64Array([4096, 4096]) })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});

describe('a hand-written /proc', () => {
  it('reads each mapping\'s pagemap entries at its own address: bit 63 present, the file offset from the mapping\'s', () => {
    const root = join(tmp, 'proc');
    mkdirSync(join(root, '7'), { recursive: true });
    // Two mappings of one file (as the loader maps a library: text and data at different offsets), an anonymous one.
    const maps = [
      '00400000-00404000 r-xp 00000000 fe:00 11 /opt/lib/libx.so',
      '00404000-00405000 rw-p 00000000 00:00 0',
      '00405000-00407000 r--p 00010000 fe:00 11 /opt/lib/libx.so',
      '00407000-00408000 r--p 00000000 fe:00 12 /opt/lib/with space.so',
      '00408000-00409000 r--p 00000000 fe:00 13 /opt/lib/cold.so',
    ].join('\n');
    writeFileSync(join(root, '7', 'maps'), `${maps}\n`);
    const pagemap = Buffer.alloc(0x409 * 8);
    const present = (page: number) => pagemap.writeBigUInt64LE(1n << 63n, page * 8);
    present(0x400); // libx page 0
    present(0x401); // libx page 1 (a run with page 0)
    present(0x403); // libx page 3
    present(0x404); // anonymous: not a file
    present(0x406); // libx at offset 0x10000 + 1 page
    present(0x407);
    pagemap.writeBigUInt64LE(1n << 62n, 0x402 * 8); // swapped, not present: left out
    writeFileSync(join(root, '7', 'pagemap'), pagemap);
    // As address ranges for a page-out: only pages that are file pages too (bit 61); page 0x401 is a private copy.
    for (const page of [0x400, 0x403, 0x406]) pagemap.writeBigUInt64LE((1n << 63n) | (1n << 61n), page * 8);
    writeFileSync(join(root, '7', 'pagemap'), pagemap);
    expect(filePagesPresent(7, root)).toEqual([0x400 * PAGE, PAGE, 0x403 * PAGE, PAGE, 0x406 * PAGE, PAGE]);
    expect(filePagesPresent(99, root)).toBeNull();
    expect(mappedFilePages(7, root)).toEqual([
      { path: '/opt/lib/libx.so', runs: [[0, 2 * PAGE], [3 * PAGE, PAGE]] },
      { path: '/opt/lib/libx.so', runs: [[0x10000 + PAGE, PAGE]] },
      { path: '/opt/lib/with space.so', runs: [[0, PAGE]] },
      { path: '/opt/lib/cold.so', runs: [] }, // mapped, no page in memory: still named (restore checks every mapped file)
    ]);
    // Merged across mappings and processes, clipped to the file's size, coalesced across small gaps; a mapped file with
    // no page in memory listed with no ranges; every mapped regular file listed: complete.
    const stat = (p: string) => (p === '/opt/lib/libx.so' ? { isFile: () => true, size: 0x10000 + 1000, mtimeMs: 5 } : p === '/opt/lib/with space.so' ? { isFile: () => false, size: 4096, mtimeMs: 5 } : p === '/opt/lib/cold.so' ? { isFile: () => true, size: 4096, mtimeMs: 6 } : null);
    const ws = recordWorkingSet([7, 8], (pid) => mappedFilePages(pid, root), stat)!;
    expect(ws).toEqual({
      files: [
        { path: '/opt/lib/cold.so', bytes: 4096, mtimeMs: 6, ranges: [] },
        { path: '/opt/lib/libx.so', bytes: 0x10000 + 1000, mtimeMs: 5, ranges: [0, 0x10000 + 1000] },
      ],
      bytes: 0x10000 + 1000,
      complete: true,
    });
  });

  it('records at most what a restore accepts (WORKING_SET_MAX_FILES): the rest counted in leftOut, never an image restore refuses', () => {
    const many = WORKING_SET_MAX_FILES + 6;
    const maps = Array.from({ length: many }, (_, i) => ({ path: `/lib/f${String(i).padStart(6, '0')}.so`, runs: [[0, PAGE]] as Array<[number, number]> }));
    const ws = recordWorkingSet([1], () => maps, () => ({ isFile: () => true, size: PAGE, mtimeMs: 1 }))!;
    expect(ws.files).toHaveLength(WORKING_SET_MAX_FILES);
    expect(ws.leftOut).toBe(6);
    expect(ws.bytes).toBe(WORKING_SET_MAX_FILES * PAGE);
    expect(recordWorkingSet([1], () => maps.slice(0, 2), () => ({ isFile: () => true, size: PAGE, mtimeMs: 1 }))).not.toHaveProperty('leftOut');
  });

  it('coalesce: sorted, overlaps merged, gaps up to WORKING_SET_GAP closed, larger ones kept', () => {
    expect(coalesce([[8192, 4096], [0, 4096], [4096, 8192]])).toEqual([[0, 12288]]);
    expect(coalesce([[0, 4096], [4096 + WORKING_SET_GAP, 4096]])).toEqual([[0, 2 * 4096 + WORKING_SET_GAP]]);
    expect(coalesce([[0, 4096], [4096 + WORKING_SET_GAP + 4096, 4096]])).toEqual([[0, 4096], [4096 + WORKING_SET_GAP + 4096, 4096]]);
    expect(coalesce([[0, 65536], [4096, 4096]])).toEqual([[0, 65536]]);
  });
});

describe('at restore: only the files still as the snapshot found them', () => {
  it('a file changed (mtime or size), gone, or not a regular file is left out and said why', async () => {
    const d = join(tmp, 'plan');
    mkdirSync(d);
    const same = join(d, 'same.so');
    const touched = join(d, 'touched.so');
    const grown = join(d, 'grown.so');
    const fifo = join(d, 'fifo.so');
    const unread = join(d, 'unread.so'); // mapped, no page in memory: checked, nothing to read
    for (const f of [same, unread, touched, grown]) writeFileSync(f, Buffer.alloc(3 * PAGE, 1));
    const rec = (p: string) => ({ path: p, bytes: statSync(p).size, mtimeMs: statSync(p).mtimeMs, ranges: [0, PAGE, 2 * PAGE, PAGE] });
    const files = [rec(same), { ...rec(unread), ranges: [] }, rec(touched), rec(grown), { path: join(d, 'gone.so'), bytes: PAGE, mtimeMs: 1, ranges: [0, PAGE] }];
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    files.push({ path: fifo, bytes: 0, mtimeMs: statSync(fifo).mtimeMs, ranges: [] });
    utimesSync(touched, new Date(), new Date(Date.now() + 10_000));
    const mtime = statSync(grown).mtime;
    writeFileSync(grown, Buffer.alloc(4 * PAGE, 1));
    utimesSync(grown, mtime, mtime); // same mtime, another size
    const plan = await planWorkingSet({ files, bytes: 0 });
    expect(plan.paths).toEqual([same]);
    expect(plan.ranges).toEqual([[0, PAGE, 2 * PAGE, PAGE]]);
    expect(plan.bytes).toBe(2 * PAGE);
    expect(plan.skipped).toEqual([
      { path: touched, why: 'changed since the snapshot (size or mtime)' },
      { path: grown, why: 'changed since the snapshot (size or mtime)' },
      { path: join(d, 'gone.so'), why: 'gone' },
      { path: fifo, why: 'not a regular file' },
    ]);
  });
});

describe('one restore, two plans (the manifest\'s working set and a kept one)', () => {
  it('statEachOnce asks each path once and answers every plan alike; a missing path is null', async () => {
    const d = join(tmp, 'once');
    mkdirSync(d);
    const f = join(d, 'lib.so');
    writeFileSync(f, Buffer.alloc(2 * PAGE, 1));
    const stat = statEachOnce();
    const first = stat(f);
    expect(stat(f)).toBe(first); // the same pending stat, not a second one
    expect((await first)!.size).toBe(2 * PAGE);
    expect(await stat(join(d, 'gone.so'))).toBeNull();
    const rec = { path: f, bytes: 2 * PAGE, mtimeMs: statSync(f).mtimeMs, ranges: [0, PAGE] };
    const [a, b] = await Promise.all([planWorkingSet({ files: [rec], bytes: PAGE }, stat), planWorkingSet({ files: [{ ...rec, ranges: [PAGE, PAGE] }], bytes: PAGE }, stat)]);
    expect([a.paths, b.paths, a.ranges, b.ranges]).toEqual([[f], [f], [[0, PAGE]], [[PAGE, PAGE]]]);
  });
});

describe("the manifest's check of a recorded working set (an image is untrusted input)", () => {
  /** The smallest manifest validateManifest accepts, with `workingSet`. */
  const manifest = (workingSet: unknown) => ({
    schema: 'coldstart/snapshot-image@2',
    createdAt: '2026-12-06T00:00:00Z',
    tool: 'coldstart',
    command: ['python3', 'server.py'],
    cwd: '/srv',
    log: null,
    readyUrl: null,
    warmup: null,
    rootPid: 10,
    pids: [10],
    gpuPids: [],
    ports: [],
    fingerprint: { arch: 'x64', kernel: '6.1', criu: '4.2.1', gpu: null },
    cold: { readySeconds: 1, firstRequestSeconds: null, totalSeconds: 1, notes: [] },
    snapshotSeconds: {},
    imageBytes: 0,
    memoryEstimateBytes: 0,
    hash: 'sha256-16MiB-chunks',
    files: [{ name: 'inventory.img', bytes: 0, sha256: '', chunks: [''] }],
    beforeSnapshot: null,
    afterRestore: null,
    kinds: null,
    workingSet,
  });
  const file = (o: Record<string, unknown> = {}) => ({ path: '/usr/lib/libx.so', bytes: 10 * PAGE, mtimeMs: 1.5, ranges: [0, PAGE, 4 * PAGE, 2 * PAGE], ...o });

  it('accepts a good one, null and absent; refuses every malformed field (CORRUPT_FILE naming it)', async () => {
    const { CHUNK_HASH, rootDigest } = await import('../../src/snapshot/hash.js');
    const { createHash } = await import('node:crypto');
    const empty = createHash('sha256').update(Buffer.alloc(0)).digest('hex');
    const check = (ws: unknown) => {
      const m = manifest(ws) as Record<string, unknown>;
      m.hash = CHUNK_HASH;
      m.files = [{ name: 'inventory.img', bytes: 0, sha256: rootDigest([empty]), chunks: [empty] }];
      if (ws === undefined) delete m.workingSet;
      return () => validateManifest(m, '/img/manifest.json', '/img');
    };
    expect(check({ files: [file()], bytes: 3 * PAGE })).not.toThrow();
    expect(check({ files: [file(), file({ path: '/usr/lib/liby.so', ranges: [] })], bytes: 3 * PAGE, complete: true })).not.toThrow();
    expect(check(null)).not.toThrow();
    expect(check(undefined)).not.toThrow();
    const bad: Array<[unknown, RegExp]> = [
      ['x', /workingSet: expected an object/],
      [{ files: [file({ path: 'lib/x.so' })], bytes: 3 * PAGE }, /workingSet\.files\[0\]\.path: expected an absolute, normal path/],
      [{ files: [file({ path: '/usr/../etc/x' })], bytes: 3 * PAGE }, /workingSet\.files\[0\]\.path/],
      [{ files: [file({ bytes: -1 })], bytes: 3 * PAGE }, /workingSet\.files\[0\]\.bytes/],
      [{ files: [file({ mtimeMs: 'now' })], bytes: 3 * PAGE }, /workingSet\.files\[0\]\.mtimeMs/],
      [{ files: [file({ ranges: [0] })], bytes: 0 }, /workingSet\.files\[0\]\.ranges: expected offset, length pairs/],
      [{ files: [file({ ranges: [4 * PAGE, PAGE, 0, PAGE] })], bytes: 2 * PAGE }, /workingSet\.files\[0\]\.ranges\[2\]/], // not sorted
      [{ files: [file({ ranges: [0, 2 * PAGE, PAGE, PAGE] })], bytes: 3 * PAGE }, /workingSet\.files\[0\]\.ranges\[2\]/], // overlapping
      [{ files: [file({ ranges: [9 * PAGE, 2 * PAGE] })], bytes: 2 * PAGE }, /workingSet\.files\[0\]\.ranges\[1\]/], // past the end
      [{ files: [file({ ranges: [0, 0] })], bytes: 0 }, /workingSet\.files\[0\]\.ranges\[1\]/], // empty range
      [{ files: [file()], bytes: 1 }, /workingSet\.bytes: expected the sum of the ranges' lengths/],
      [{ files: 'all', bytes: 0 }, /workingSet\.files: expected an array/],
      [{ files: [file()], bytes: 3 * PAGE, leftOut: -1 }, /workingSet\.leftOut/],
      [{ files: [file()], bytes: 3 * PAGE, complete: 'yes' }, /workingSet\.complete/],
      [{ files: [file()], bytes: 3 * PAGE, complete: false }, /workingSet\.complete/],
      [{ files: [file()], bytes: 3 * PAGE, complete: true, leftOut: 2 }, /workingSet\.complete: expected true \(every mapped file listed\), and no leftOut/], // a partial list said whole
    ];
    for (const [ws, msg] of bad) {
      let err: unknown;
      try {
        check(ws)();
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string } | undefined)?.code, JSON.stringify(ws)).toBe('CORRUPT_FILE');
      expect((err as Error).message, JSON.stringify(ws)).toMatch(msg);
    }
  });
});
