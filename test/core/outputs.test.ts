/**
 * Issue #22, outputs: nothing outside its place is touched. Each case through the CLI: the documented exit and
 * error code, and every file outside the expected folder unchanged (bytes and mtime), no secret copied, leftovers of
 * killed runs removed by the next run, no hang on procfs, and a report never lost to a failed export.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn, spawnSync } from 'node:child_process';
import { runCli } from '../helpers/cli.js';
import { peerPython, runPython } from '../helpers/python.js';
import { readHeader } from '../../src/formats/safetensors.js';
import { emitReport } from '../../src/core/emit.js';
import { newReport } from '../../src/core/report.js';
import { Output } from '../../src/core/output.js';
import { LEFTOVER_IDLE_SECONDS } from '../../src/core/atomic.js';

const FIX = fileURLToPath(new URL('../../fixtures/torch/', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/coldstart.js', import.meta.url));
const good = (f: string) => join(FIX, 'good', f);
const model = (m: string) => join(FIX, 'models', m);
const isRoot = process.getuid?.() === 0;
let work: string;
beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'coldstart-outputs-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function fresh(name: string): string {
  const d = join(work, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d, { recursive: true });
  return d;
}

function copyModel(from: string, to: string): string {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) copyFileSync(join(from, f), join(to, f));
  return to;
}

/** Every entry under `dir`: sha256 of its bytes (or its link target), mtime and mode — what "untouched" means. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (p: string) => {
    const st = lstatSync(p);
    const rel = relative(dir, p) || '.';
    if (st.isSymbolicLink()) out[rel] = `link ${readlinkSync(p)} ${st.mtimeMs}`;
    else if (st.isDirectory()) {
      out[rel] = `dir ${st.mode}`;
      for (const n of readdirSync(p)) walk(join(p, n));
    } else out[rel] = `${createHash('sha256').update(readFileSync(p)).digest('hex')} ${st.mtimeMs} ${st.mode}`;
  };
  walk(dir);
  return out;
}

const json = (stdout: string) => JSON.parse(stdout) as { schema: string; error?: { code: string; exitCode: number; message: string }; exitCode?: number; exportErrors?: Array<{ code: string }> };

describe('case 1: an output above, inside or over the input, and --force', () => {
  it('convert parent/model -o parent --force: exit 2 (BAD_FLAG), the input and an unrelated sibling untouched', async () => {
    const parent = fresh('above');
    copyModel(model('tiny-llama'), join(parent, 'model'));
    mkdirSync(join(parent, 'sibling'));
    writeFileSync(join(parent, 'sibling', 'victim.txt'), 'keep me');
    const before = tree(parent);
    for (const args of [
      ['convert', join(parent, 'model'), '-o', parent, '--force'],
      ['convert', join(parent, 'model'), '-o', parent],
      ['convert', join(parent, 'model'), '-o', join(parent, 'model', 'inside'), '--force'],
      ['convert', join(parent, 'model'), '-o', join(parent, 'model'), '--force'],
      ['convert', join(parent, 'model', 'pytorch_model.bin'), '-o', join(parent, 'model', 'pytorch_model.bin'), '--force'],
    ]) {
      const r = await runCli(['--json', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(json(r.stdout).error!.code).toBe('BAD_FLAG');
      expect(r.stderr.split('\n')[0]).toMatch(/--output: .*(is the input|is inside the input|contains the input|must differ from the input)/);
      expect(tree(parent)).toEqual(before);
    }
  });

  it('--force on a folder coldstart did not write (no marker, or a marker plus a file of the user): exit 2, nothing removed', async () => {
    const d = fresh('not-ours');
    const out = join(d, 'out');
    mkdirSync(out);
    writeFileSync(join(out, 'victim.bin'), 'precious');
    const before = tree(d);
    const r = await runCli(['--json', 'convert', model('tiny-llama'), '-o', out, '--force']);
    expect(r.code).toBe(2);
    expect(json(r.stdout).error).toMatchObject({ code: 'OUTPUT_EXISTS', exitCode: 2 });
    expect(r.stderr).toContain('--force');
    expect(tree(d)).toEqual(before);

    // coldstart's own output, to which the user added a file: refused too, the file kept
    rmSync(out, { recursive: true });
    expect((await runCli(['convert', model('tiny-llama'), '-o', out])).code).toBe(0);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    const before2 = tree(d);
    const r2 = await runCli(['--json', 'convert', model('tiny-llama'), '-o', out, '--force']);
    expect(r2.code).toBe(2);
    expect(json(r2.stdout).error!.code).toBe('OUTPUT_EXISTS');
    expect(r2.stderr).toContain('notes.txt'); // the file it will not replace, named
    expect(tree(d)).toEqual(before2);

    // a marker that names a path outside its folder is not trusted
    rmSync(join(out, 'notes.txt'));
    const marker = JSON.parse(readFileSync(join(out, '.coldstart-output.json'), 'utf8'));
    writeFileSync(join(out, '.coldstart-output.json'), JSON.stringify({ ...marker, files: [...marker.files, '../victim'] }));
    writeFileSync(join(d, 'victim'), 'outside');
    const before3 = tree(d);
    const r3 = await runCli(['convert', model('tiny-llama'), '-o', out, '--force']);
    expect(r3.code).toBe(2);
    expect(tree(d)).toEqual(before3);
  });

  it('--force replaces coldstart\'s own earlier output exactly: the new folder in place, nothing left beside it', async () => {
    const d = fresh('ours');
    const out = join(d, 'out');
    writeFileSync(join(d, 'neighbour.txt'), 'n');
    expect((await runCli(['convert', model('tiny-gpt2'), '-o', out])).code).toBe(0);
    const first = readdirSync(out).sort();
    expect(first).toContain('.coldstart-output.json');
    const marker = JSON.parse(readFileSync(join(out, '.coldstart-output.json'), 'utf8'));
    expect(marker).toMatchObject({ schema: 'coldstart/output@1', command: 'convert' });
    expect([...marker.files, '.coldstart-output.json'].sort()).toEqual(first);
    const neighbour = tree(d)['neighbour.txt'];
    const again = await runCli(['convert', model('tiny-llama'), '-o', out, '--force']);
    expect(again.code, again.stderr).toBe(0);
    expect(readdirSync(d).sort()).toEqual(['neighbour.txt', 'out']);
    expect(tree(d)['neighbour.txt']).toBe(neighbour);
    expect(readHeader(join(out, 'model.safetensors')).tensors.some((t) => t.name.includes('layers'))).toBe(true);
    expect(readdirSync(out)).not.toContain('merges.txt'); // tiny-gpt2's own side files went with its folder
  });

  it('export files: never the input, a folder, a device, the same path twice or empty (exit 2 before any work)', async () => {
    const d = fresh('exports');
    const input = join(d, 'views.pt');
    copyFileSync(good('views.pt'), input);
    mkdirSync(join(d, 'adir'));
    const before = tree(d);
    for (const [flags, code] of [
      [['--export-json', input], 'BAD_FLAG'],
      [['--export-markdown', join(d, 'adir')], 'OUTPUT_EXISTS'],
      [['--junit', '/dev/null'], 'OUTPUT_EXISTS'],
      [['--export-json', join(d, 'r'), '--junit', join(d, 'r')], 'BAD_FLAG'],
      [['--export-json', ''], 'BAD_FLAG'],
    ] as Array<[string[], string]>) {
      const r = await runCli(['--json', 'convert', input, '-o', join(d, 'out.safetensors'), ...flags]);
      expect(r.code, `${flags.join(' ')}: ${r.stderr}`).toBe(2);
      expect(json(r.stdout).error!.code).toBe(code);
      expect(tree(d)).toEqual(before); // refused before the conversion: no output either
    }
    // an earlier report file is replaced (exports always are), atomically
    writeFileSync(join(d, 'r.json'), 'old report');
    const ok = await runCli(['convert', input, '-o', join(d, 'out.safetensors'), '--export-json', join(d, 'r.json')]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(json(readFileSync(join(d, 'r.json'), 'utf8')).schema).toBe('coldstart/convert@1');
  });
});

describe('case 1: an export never replaces an input', () => {
  it('profile w.safetensors --export-json w.safetensors and report merge r.json --export-json r.json: exit 2 (BAD_FLAG), inputs unchanged', async () => {
    const d = fresh('merge');
    const st = join(d, 'w.safetensors');
    const h = Buffer.from('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    writeFileSync(st, Buffer.concat([len, h, Buffer.alloc(4)]));
    const over = await runCli(['--json', 'profile', st, '--export-json', st], { env: { COLDSTART_CACHE: d } });
    expect(over.code, over.stderr).toBe(2);
    expect(json(over.stdout).error!.code).toBe('BAD_FLAG');
    expect(readHeader(st).tensors).toHaveLength(1); // the weights were not replaced by a report
    const p = await runCli(['profile', st, '--export-json', join(d, 'r.json'), '-q'], { env: { COLDSTART_CACHE: d } });
    expect(p.code, p.stderr).toBe(0);
    const before = tree(d);
    const r = await runCli(['--json', 'report', 'merge', join(d, 'r.json'), '--export-json', join(d, 'r.json')]);
    expect(r.code, r.stderr).toBe(2);
    expect(json(r.stdout).error!.code).toBe('BAD_FLAG');
    expect(tree(d)).toEqual(before);
  }, 60_000);
});

describe('case 1: --prometheus adds to its own textfile and replaces nothing else', () => {
  it("a file that is not coldstart's textfile (a config) is refused before the run (exit 2), bytes and mtime kept; its own textfile is replaced run after run", async () => {
    const d = fresh('prom');
    const st = join(d, 'w.safetensors');
    const h = Buffer.from('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    writeFileSync(st, Buffer.concat([len, h, Buffer.alloc(4)]));
    const victim = join(d, 'package.json');
    writeFileSync(victim, '{"name":"mine"}\n');
    const before = statSync(victim).mtimeMs;
    const r = await runCli(['--json', 'profile', st, '--prometheus', victim], { env: { COLDSTART_CACHE: d } });
    expect(r.code, r.stderr).toBe(2);
    expect(json(r.stdout).error!.code).toBe('OUTPUT_EXISTS');
    expect(readFileSync(victim, 'utf8')).toBe('{"name":"mine"}\n');
    expect(statSync(victim).mtimeMs).toBe(before);
    const prom = join(d, 'coldstart.prom');
    writeFileSync(prom, ''); // an empty file (touched by a node-exporter set-up) is fine
    for (let i = 0; i < 2; i++) expect((await runCli(['profile', st, '--prometheus', prom, '-q'], { env: { COLDSTART_CACHE: d } })).code).toBe(0);
    // the second run found its own (non-empty) textfile and replaced it
    expect(readFileSync(prom, 'utf8')).toMatch(/^coldstart_last_run_timestamp_seconds\{command="profile"\} \d+$/m);
  }, 60_000);
});

describe('case 2: links in a model folder', () => {
  function secretModel(name: string, link: (secret: string, dir: string) => string): { dir: string; secret: string; root: string } {
    const root = fresh(name);
    const secret = join(root, 'shadow');
    writeFileSync(secret, 'root:TOPSECRET-HASH:19000::::::\n');
    chmodSync(secret, 0o4640);
    const dir = copyModel(model('tiny-llama'), join(root, 'model'));
    symlinkSync(link(secret, dir), join(dir, 'tokenizer.json'));
    return { dir, secret, root };
  }
  const leaked = (root: string) => {
    const found: string[] = [];
    const walk = (p: string) => {
      for (const n of readdirSync(p)) {
        const q = join(p, n);
        const st = lstatSync(q);
        if (st.isDirectory()) walk(q);
        else if (st.isFile() && n !== 'shadow' && readFileSync(q, 'utf8').includes('TOPSECRET')) found.push(q);
      }
    };
    walk(root);
    return found;
  };

  for (const [kind, link] of [
    ['an absolute link to a secret outside', (secret: string) => secret],
    ['a relative link leaving the folder', () => '../shadow'],
    ['/etc/shadow itself', () => '/etc/shadow'],
  ] as Array<[string, (s: string, d: string) => string]>) {
    it(`tokenizer.json as ${kind}: exit 2 (HOSTILE_FILE) naming the link, nothing written, no secret copied`, async () => {
      const { dir, root } = secretModel(`secret-${kind.length}`, link);
      const before = tree(root);
      const out = join(root, 'out');
      const r = await runCli(['--json', 'convert', dir, '-o', out]);
      expect(r.code, r.stderr).toBe(2);
      expect(json(r.stdout).error!.code).toBe('HOSTILE_FILE');
      expect(r.stderr.split('\n')[0]).toContain(join(dir, 'tokenizer.json'));
      expect(existsSync(out)).toBe(false);
      expect(tree(root)).toEqual(before);
      expect(leaked(root)).toEqual([]);
    });
  }

  it('the weights themselves as a link out of the folder: refused before they are read', async () => {
    const root = fresh('weights-link');
    const dir = join(root, 'model');
    mkdirSync(dir);
    copyFileSync(model('tiny-llama') + '/config.json', join(dir, 'config.json'));
    copyFileSync(model('tiny-llama') + '/pytorch_model.bin', join(root, 'elsewhere.bin'));
    symlinkSync(join(root, 'elsewhere.bin'), join(dir, 'pytorch_model.bin'));
    const r = await runCli(['--json', 'convert', dir, '-o', join(root, 'out')]);
    expect(r.code).toBe(2);
    expect(json(r.stdout).error!.code).toBe('HOSTILE_FILE');
    expect(existsSync(join(root, 'out'))).toBe(false);
  });

  it('links inside the folder and a Hub cache snapshot (links to ../../blobs) are followed; side files get mode 0644', async () => {
    const root = fresh('links-ok');
    const dir = copyModel(model('tiny-llama'), join(root, 'model'));
    mkdirSync(join(dir, 'real'));
    writeFileSync(join(dir, 'real', 'tok.json'), '{"inside": true}');
    symlinkSync('real/tok.json', join(dir, 'tokenizer.json'));
    chmodSync(join(dir, 'config.json'), 0o6755); // setuid/setgid/exec on a side file do not travel
    const r = await runCli(['convert', dir, '-o', join(root, 'out')]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(root, 'out', 'tokenizer.json'), 'utf8')).toBe('{"inside": true}');
    expect(lstatSync(join(root, 'out', 'tokenizer.json')).isFile()).toBe(true);
    const mode = statSync(join(root, 'out', 'config.json')).mode & 0o7777;
    expect(mode & 0o7111).toBe(0);

    // the Hub cache layout: snapshots/<rev>/* -> ../../blobs/<hash>
    const repo = join(root, 'hub', 'models--org--tiny');
    const snap = join(repo, 'snapshots', 'a'.repeat(40));
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(snap, { recursive: true });
    for (const f of readdirSync(model('tiny-llama'))) {
      const h = createHash('sha256').update(readFileSync(join(model('tiny-llama'), f))).digest('hex');
      copyFileSync(join(model('tiny-llama'), f), join(repo, 'blobs', h));
      symlinkSync(`../../blobs/${h}`, join(snap, f));
    }
    const c = await runCli(['convert', snap, '-o', join(root, 'from-cache')]);
    expect(c.code, c.stderr).toBe(0);
    expect(readdirSync(join(root, 'from-cache')).sort()).toEqual(['.coldstart-output.json', 'config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer_config.json']);
    // a sub-folder of a snapshot (diffusers' unet/ and the like) links three levels up
    const sub = join(snap, 'unet');
    mkdirSync(sub);
    for (const f of readdirSync(model('tiny-llama'))) symlinkSync(`../${readlinkSync(join(snap, f))}`, join(sub, f));
    const u = await runCli(['convert', sub, '-o', join(root, 'from-cache-unet')]);
    expect(u.code, u.stderr).toBe(0);
    // but not out of the repo folder
    symlinkSync('../../../../shadow-ish', join(sub, 'extra.json'));
    writeFileSync(join(root, 'hub', 'shadow-ish'), 'TOPSECRET');
    const x = await runCli(['--json', 'convert', sub, '-o', join(root, 'from-cache-x')]);
    expect(x.code).toBe(2);
    expect(json(x.stdout).error!.code).toBe('HOSTILE_FILE');
  });
});

describe('case 3: an output path that is a symbolic link', () => {
  it('convert -o <dangling link> (file and folder outputs) and --export-json <link>: exit 2, the link untouched, its target not created', async () => {
    const d = fresh('dangling');
    const link = join(d, 'link');
    symlinkSync(join(d, 'target-that-does-not-exist'), link);
    const live = join(d, 'live');
    writeFileSync(join(d, 'report-target.json'), 'victim');
    symlinkSync(join(d, 'report-target.json'), live);
    const before = tree(d);
    for (const args of [
      ['convert', good('views.pt'), '-o', link],
      ['convert', good('views.pt'), '-o', link, '--force'],
      ['convert', model('tiny-llama'), '-o', link, '--force'],
      ['convert', good('views.pt'), '-o', join(d, 'x.safetensors'), '--export-json', live],
    ]) {
      const r = await runCli(['--json', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(json(r.stdout).error!.code).toBe('BAD_FLAG');
      expect(r.stderr).toMatch(/is a symbolic link/);
      expect(tree(d)).toEqual(before);
    }
  });
});

describe('case 4: leftovers of killed runs', () => {
  const old = (p: string) => {
    const t = new Date(Date.now() - (LEFTOVER_IDLE_SECONDS + 600) * 1000);
    const walk = (q: string) => {
      if (lstatSync(q).isDirectory()) for (const n of readdirSync(q)) walk(join(q, n));
      utimesSync(q, t, t);
    };
    walk(p);
  };

  it('the next run writing into the folder removes temps of dead, idle runs and says so once; live, fresh, foreign ones stay', async () => {
    const d = fresh('leftovers');
    // dead pid (beyond pid_max), idle for over an hour: removed (a file, and a folder of a directory output)
    writeFileSync(join(d, '.out.safetensors.coldstart-4999999-0badf00d.tmp'), Buffer.alloc(1 << 20));
    mkdirSync(join(d, '.m.coldstart-4999998-cafebabe.tmp', 'sub'), { recursive: true });
    writeFileSync(join(d, '.m.coldstart-4999998-cafebabe.tmp', 'sub', 'model.safetensors'), Buffer.alloc(4096));
    old(join(d, '.out.safetensors.coldstart-4999999-0badf00d.tmp'));
    old(join(d, '.m.coldstart-4999998-cafebabe.tmp'));
    // kept: a live pid (1), a fresh one (maybe a live run in another PID namespace), a link, a look-alike name
    writeFileSync(join(d, '.a.coldstart-1-00000001.tmp'), 'live');
    old(join(d, '.a.coldstart-1-00000001.tmp'));
    writeFileSync(join(d, '.b.coldstart-4999997-00000002.tmp'), 'fresh');
    symlinkSync('/etc/hostname', join(d, '.c.coldstart-4999996-00000003.tmp'));
    writeFileSync(join(d, 'notes.coldstart-4999995-00000004.tmp'), 'not hidden: not ours');
    old(join(d, 'notes.coldstart-4999995-00000004.tmp'));
    const kept = ['.a.coldstart-1-00000001.tmp', '.b.coldstart-4999997-00000002.tmp', '.c.coldstart-4999996-00000003.tmp', 'notes.coldstart-4999995-00000004.tmp'];
    const keptBefore = Object.fromEntries(Object.entries(tree(d)).filter(([k]) => kept.includes(k)));

    const r = await runCli(['convert', good('views.pt'), '-o', join(d, 'out.safetensors')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.match(/removed \d+ leftover/g), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/removed 2 leftover\(s\) of interrupted coldstart runs/);
    expect(readdirSync(d).sort()).toEqual([...kept, 'out.safetensors'].sort());
    expect(Object.fromEntries(Object.entries(tree(d)).filter(([k]) => kept.includes(k)))).toEqual(keptBefore);
    // nothing left to say on the next run
    const again = await runCli(['convert', good('views.pt'), '-o', join(d, 'out.safetensors'), '--force']);
    expect(again.code).toBe(0);
    expect(again.stderr).not.toMatch(/removed \d+ leftover/);
  });

  it('an export run cleans its folder too', async () => {
    const d = fresh('leftovers-export');
    writeFileSync(join(d, '.r.json.coldstart-4999999-0badf00d.tmp'), '{');
    old(join(d, '.r.json.coldstart-4999999-0badf00d.tmp'));
    const r = await runCli(['--json', 'convert', good('views.pt'), '-o', join(work, 'lx.safetensors'), '--export-json', join(d, 'r.json')]);
    expect(r.code, r.stderr).toBe(0);
    expect(readdirSync(d)).toEqual(['r.json']);
    expect(r.stderr).toMatch(/removed 1 leftover/);
  });

  const py = peerPython();
  it.skipIf(!py)('a convert killed with SIGKILL leaves its temp; the next run into that folder (once the temp is idle) removes it', async () => {
    const d = fresh('killed');
    const big = join(work, 'killed-big.pt');
    if (!existsSync(big)) runPython(py!, 'import torch, sys\ntorch.save({"w": torch.ones(24 * 2**20)}, sys.argv[1])', [big]);
    const out = join(d, 'out');
    mkdirSync(out);
    const child = spawn(process.execPath, [BIN, 'convert', big, '-o', join(out, 'big.safetensors'), '--dtype', 'bf16', '--verify'], { stdio: 'ignore' });
    const t0 = Date.now();
    while (!readdirSync(out).some((f) => f.includes('.coldstart-')) && Date.now() - t0 < 20_000) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const left = readdirSync(out).filter((f) => f.includes('.coldstart-'));
    expect(left).toHaveLength(1);
    // a fresh leftover may be a live run elsewhere: kept
    const fresh1 = await runCli(['convert', good('views.pt'), '-o', join(out, 'v.safetensors')]);
    expect(fresh1.code).toBe(0);
    expect(readdirSync(out)).toContain(left[0]);
    old(join(out, left[0]!));
    const r = await runCli(['convert', good('views.pt'), '-o', join(out, 'w.safetensors')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(left[0]);
    expect(readdirSync(out).sort()).toEqual(['v.safetensors', 'w.safetensors']);
  }, 120_000);
});

describe('case 6: an export on a full disk', () => {
  /** A full 64 KiB tmpfs (root), or null where mounting is impossible. */
  function fullDisk(name: string): string | null {
    if (!isRoot) return null;
    const mnt = fresh(name);
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt]).status !== 0) return null;
    try {
      writeFileSync(join(mnt, 'filler'), Buffer.alloc(1 << 20));
    } catch {
      // ENOSPC: the volume is now full
    }
    return mnt;
  }

  it('--export-json/--export-markdown/--junit on a full disk: the report is still printed (human and --json), then the failure; exit 3', async () => {
    const mnt = fullDisk('full');
    if (!mnt) {
      // no tmpfs here: the same path with a writer that fails as a full disk does
      const out = { text: '', err: '' };
      const o = new Output({ argv: [], env: {}, cwd: () => work, stdout: { write: (s: string) => (out.text += s) }, stderr: { write: (s: string) => (out.err += s) } }, { json: true, quiet: false, color: false, debug: false });
      const code = emitReport(o, newReport('convert'), work, { exportJson: join(work, 'r.json'), writeFile: () => { throw Object.assign(new Error('ENOSPC'), { code: 'ENOSPC' }); } });
      expect(code).toBe(3);
      expect(json(out.text)).toMatchObject({ schema: 'coldstart/convert@1', exitCode: 3, exportErrors: [{ code: 'DISK_FULL' }] });
      return;
    }
    try {
      const d = fresh('full-out');
      for (const flag of ['--export-json', '--export-markdown', '--junit']) {
        const h = await runCli(['convert', good('views.pt'), '-o', join(d, `h${flag}.safetensors`), flag, join(mnt, 'report')]);
        expect(h.code, h.stderr).toBe(3);
        expect(h.stdout).toMatch(/^converted .* 11 tensors/); // the measurement, printed
        expect(h.stderr).toMatch(/coldstart: error: .*report: no space left on device/);
        expect(readHeader(join(d, `h${flag}.safetensors`)).tensors).toHaveLength(11);
      }
      const j = await runCli(['--json', 'convert', good('views.pt'), '-o', join(d, 'j.safetensors'), '--export-json', join(mnt, 'r.json')]);
      expect(j.code).toBe(3);
      const doc = json(j.stdout); // exactly one document: the report, with the export's failure
      expect(doc).toMatchObject({ schema: 'coldstart/convert@1', exitCode: 3, exportErrors: [{ code: 'DISK_FULL' }] });
      expect(j.stderr).toMatch(/no space left on device/);
      expect(readdirSync(mnt)).toEqual(['filler']); // no half-written export, no temp
      // the GitHub step summary on that disk: the same
      const g = await runCli(['convert', good('views.pt'), '-o', join(d, 'g.safetensors')], { env: { GITHUB_ACTIONS: 'true', GITHUB_STEP_SUMMARY: join(mnt, 'summary.md') } });
      expect(g.code).toBe(3);
      expect(g.stdout).toMatch(/^converted /);
      expect(g.stderr).toMatch(/summary\.md: no space left on device/);
    } finally {
      spawnSync('umount', [mnt]);
    }
  });
});

describe('case 7: an output on procfs ends at once', () => {
  it('convert -o /proc/self/sub/x (file and folder) and --export-json /proc/self/sub/x.json: exit 3 within 20 s, report first for the export', () => {
    const d = fresh('procfs');
    for (const args of [
      ['convert', good('views.pt'), '-o', '/proc/self/sub/x/out.safetensors'],
      ['convert', model('tiny-llama'), '-o', '/proc/self/sub/x'],
    ]) {
      const r = spawnSync(process.execPath, [BIN, '--json', ...args], { encoding: 'utf8', timeout: 20_000 });
      expect(r.signal, 'it hung').toBeNull();
      expect(r.status, r.stderr).toBe(3);
      expect(json(r.stdout).error).toMatchObject({ code: 'PERMISSION', exitCode: 3 });
    }
    const e = spawnSync(process.execPath, [BIN, 'convert', good('views.pt'), '-o', join(d, 'x.safetensors'), '--export-json', '/proc/self/sub/x.json'], { encoding: 'utf8', timeout: 20_000 });
    expect(e.signal, 'it hung').toBeNull();
    expect(e.status, e.stderr).toBe(3);
    expect(e.stdout).toMatch(/^converted /);
    expect(e.stderr).toMatch(/procfs|refuses new folders/);
    expect(existsSync(join(d, 'x.safetensors'))).toBe(true);
    expect(dirname(d)).toBe(work);
  });
});
