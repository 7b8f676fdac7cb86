import { describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ColdstartError } from '../../src/core/errors.js';
import { cleanupTemps, removeTemp, settleInterrupted, tempPathFor, trackResumable, trackTemp, untrackResumable, writeFileAtomic } from '../../src/core/atomic.js';

describe('core/atomic', () => {
  it('writeFileAtomic replaces the target and leaves no temporary file beside it', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-atomic-'));
    const target = join(d, 'out.json');
    writeFileSync(target, 'old');
    writeFileAtomic(target, '{"new":true}\n');
    expect(readFileSync(target, 'utf8')).toBe('{"new":true}\n');
    expect(readdirSync(d)).toEqual(['out.json']);
    expect(cleanupTemps()).toBe(0);
  });

  it('writeFileAtomic into a path whose parent is a file fails with a named error and writes nothing', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-atomic-'));
    writeFileSync(join(d, 'file'), 'x');
    let err: unknown;
    try {
      writeFileAtomic(join(d, 'file', 'out.json'), 'y');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ColdstartError);
    expect((err as ColdstartError).message).toContain(join(d, 'file'));
    expect(readdirSync(d)).toEqual(['file']);
    expect(cleanupTemps()).toBe(0);
  });

  it('removeTemp removes a tracked file or directory and stops tracking it', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-atomic-'));
    const dir = tempPathFor(join(d, 'model'));
    const file = tempPathFor(join(d, 'weights.safetensors'));
    trackTemp(dir);
    trackTemp(file);
    mkdirSync(join(dir, 'nested'), { recursive: true });
    writeFileSync(join(dir, 'nested', 'a'), 'a');
    writeFileSync(file, 'b');
    removeTemp(dir);
    removeTemp(file);
    removeTemp(join(d, 'never-made')); // absent: no error
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(file)).toBe(false);
    expect(readdirSync(d)).toEqual([]);
    expect(cleanupTemps()).toBe(0); // nothing left tracked
  });

  it('cleanupTemps removes what is still tracked (the signal path) and reports how many', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-atomic-'));
    const p = tempPathFor(join(d, 'x'));
    trackTemp(p);
    writeFileSync(p, 'partial');
    expect(cleanupTemps()).toBe(1);
    expect(existsSync(p)).toBe(false);
  });

  it('settleInterrupted removes temporaries and keeps resumable partials, counting each (the interruption message)', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-atomic-'));
    const tmp = tempPathFor(join(d, 'x'));
    trackTemp(tmp);
    writeFileSync(tmp, 'half');
    const own = join(d, 'blob.cs-1.incomplete');
    writeFileSync(own, 'resumable');
    trackResumable(own, () => {
      writeFileSync(join(d, 'blob.incomplete'), readFileSync(own));
      return true;
    });
    const empty = join(d, 'other.cs-1.incomplete');
    trackResumable(empty, () => false); // nothing worth keeping
    const done = join(d, 'done.cs-1.incomplete');
    trackResumable(done, () => true);
    untrackResumable(done); // finished before the signal: not settled
    expect(settleInterrupted()).toEqual({ removed: 1, kept: 1 });
    expect(existsSync(tmp)).toBe(false);
    expect(readFileSync(join(d, 'blob.incomplete'), 'utf8')).toBe('resumable');
    expect(settleInterrupted()).toEqual({ removed: 0, kept: 0 });
  });
});
