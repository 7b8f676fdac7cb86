/**
 * The device proof (test/device/snapshot-gpu.sh), run here on the CPU before an H200's minutes are spent on it: its
 * CPU dry run takes the same steps with real CRIU on a toy model — the weights written as safetensors, the hooked
 * snapshot (sleep level 2, the working set learned), a restore from the page cache and one with the learned set
 * removed, each woken through coldstart_load and answered twice — and every answer must match the snapshot's.
 * A change that breaks the script, its server or the JSON it reads fails here, not on a lent GPU.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { criuReady } from '../helpers/criu.js';
import { peerPython } from '../helpers/python.js';
import { freePort } from '../helpers/fake-servers.js';

const script = fileURLToPath(new URL('../device/snapshot-gpu.sh', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
const ready = criuReady() && peerPython() !== null;
const tmp = mkdtempSync(join(tmpdir(), 'cs-proof-dry-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Phase {
  name: string;
  seconds: number | null;
}

const json = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

describe.skipIf(!ready)('device proof: snapshot-gpu.sh CPU dry run', () => {
  it('snapshots the hooked toy server, restores it from the page cache and with the learned set removed, and every answer matches', async () => {
    const out = join(tmp, 'out');
    // -floor: restore --floor through the real addon (the image and weights read again; no GPU state here)
    // -stage: restore --stage WEIGHTS through the command line (a CPU server: nothing to stage, said why)
    const restores = ['warm-huge-cs-floor-stage', 'cold-huge-pf-cs-nokept-floor'];
    // The script's hooked server listens on PORT + 1: both taken from this worker's own slice of ports, in order.
    const port = await freePort();
    expect(await freePort()).toBe(port + 1);
    const env = {
      ...process.env,
      OUT: out,
      WORK: join(tmp, 'work'),
      WEIGHTS_DIR: join(tmp, 'weights'),
      NODE: process.execPath,
      COLDSTART_PYTHON: peerPython()!,
      PORT: String(port),
      CPU_DRY_RUN: '1',
      CS_SIZE: 'tiny',
      HOOKS_ONLY: '1',
      HOOK_LEVEL: '2',
      AFTER_ANSWERS: '1',
      HOOK_RESTORES: restores.join(' '),
    };
    delete env.COLDSTART_LOAD_LIBRARY; // this checkout's build
    // Asynchronously: the run takes 25-60 s, and a worker blocked that long stops answering vitest.
    const r = await new Promise<{ status: number | null; stderr: string }>((done) => {
      const child = spawn('bash', [script, 'eager'], { cwd: root, env, stdio: ['ignore', 'ignore', 'pipe'], timeout: 240_000 });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString('utf8')).slice(-4000)));
      child.on('close', (status) => done({ status, stderr }));
    });
    const summary = existsSync(join(out, 'summary.txt')) ? readFileSync(join(out, 'summary.txt'), 'utf8') : '(no summary)';
    expect(r.status, `${summary}\n${r.stderr.slice(-2000)}`).toBe(0);

    const w = json(join(out, 'weights.json'));
    expect(w.level).toBe(2);
    expect(w.files).toBeGreaterThan(0);
    expect(w.bytes).toBeGreaterThan(1 << 20);
    const snap = json(join(out, 'snapshot-eager-hooks.json'));
    expect(snap.exitCode).toBe(0);
    expect(snap.details.workingSet.learned).toMatchObject({ sameAnswer: true, error: null });
    expect(snap.details.workingSet.files).toBeGreaterThan(0);

    for (const tag of restores) {
      const rs = json(join(out, `restore-eager-hooks-${tag}.json`));
      expect(rs.exitCode, tag).toBe(0);
      const phases = Object.fromEntries((rs.phases as Phase[]).map((p) => [p.name, p.seconds]));
      expect(phases['criu-restore'], tag).toBeGreaterThan(0);
      expect(phases['after-restore'], tag).toBeGreaterThan(0); // the wake-up read the weights back
      expect(phases['gpu-restore'], tag).toBeNull(); // no GPU here: not measured, never a zero
      expect(rs.details.restored.firstRequest.sameAsSnapshot, tag).toBe(true);
      // The floor: from where the restore found the image (the dry run drops no page cache: its "cold" restores find
      // what is there), over the image and (-pf: --prefetch) the weights; no GPU part on a CPU server; the restore
      // compared with it.
      const floor = rs.details.floor;
      expect(floor.image.from, tag).toBe(rs.details.imageResidentBytes >= 0.9 * rs.details.imageBytes ? 'page cache' : 'disk');
      expect(floor.image, tag).toMatchObject({ bytes: rs.details.imageBytes, bytesPerSecond: expect.any(Number) });
      // the weights the hook reads back, named by --prefetch (-pf) or --stage (-stage)
      const named = tag.includes('-pf') || tag.includes('-stage');
      if (named) expect(floor.weights, tag).toMatchObject({ from: expect.stringMatching(/^(disk|page cache)$/), bytes: w.bytes, bytesPerSecond: expect.any(Number) });
      else expect(floor.weights, tag).toBeNull();
      expect(floor.gpu, tag).toBeNull();
      // a hooked restore without --prefetch: the wake-up's reads are not in the floor, and it says so
      expect(floor.notes.some((n: string) => n.startsWith('what the --after-restore hook had the server read')), tag).toBe(!named);
      expect(floor.seconds, tag).toBeCloseTo(floor.image.seconds + (floor.weights?.seconds ?? 0), 12);
      expect(floor.ratio, tag).toBeCloseTo(rs.total.seconds / floor.seconds, 6);
      if (tag.includes('-stage')) expect(rs.details.stage, tag).toMatchObject({ files: w.files, bytes: 0, readyAt: null, skipped: 'the image holds no GPU state: its server has no GPU to copy them to' });
      else expect(rs.details.stage, tag).toBeUndefined();
      const more = json(join(out, `answers-eager-hooks-${tag}.json`));
      expect(more.identical, tag).toBe(true);
      expect(more.seconds[0], tag).toBeGreaterThan(0);
    }
    // -nokept: the restore before it kept the working set it touched; the second read the snapshot's own again
    expect(json(join(out, `restore-eager-hooks-${restores[1]}.json`)).details.workingSet.source).toBe('snapshot');
    expect(summary.match(/first answer identical to the snapshot's: True/g)).toHaveLength(restores.length);
    expect(summary).toContain('coldstart loader');
    // each restore says how much of the image and of the server's library pages the page cache held as it began
    expect(summary.match(/restored \(image \d+% in cache before, the server's library pages \d+%\)/g)).toHaveLength(restores.length);
    // the script cleans up after itself: no image left in its work folder
    expect(existsSync(join(tmp, 'work')) ? readdirSync(join(tmp, 'work')) : []).toEqual([]);
  }, 300_000);
});
