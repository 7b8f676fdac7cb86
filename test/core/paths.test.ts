import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ColdstartError } from '../../src/core/errors.js';
import { checkHashName, isInside, makeDirs, safeJoin } from '../../src/core/paths.js';
import { readInputText } from '../../src/core/files.js';

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof ColdstartError ? e.code : `raw:${(e as Error).message}`;
  }
  return undefined;
}

describe('core/paths: safeJoin', () => {
  it('joins names that stay inside their root', () => {
    expect(safeJoin('/r', 'a/b.safetensors', 'x')).toBe('/r/a/b.safetensors');
  });
  it.each(['', '../x', 'a/../../x', '/etc/passwd', 'a//b', './a', 'a/.', 'a\\..\\b', 'a\0b', 7, null])('refuses %j as hostile', (name) => {
    expect(codeOf(() => safeJoin('/r', name, 'the test listing'))).toBe('HOSTILE_FILE');
  });
});

describe('core/paths: checkHashName', () => {
  it('accepts 40 and 64 hex digits only', () => {
    expect(checkHashName('a'.repeat(40), 'oid')).toBe('a'.repeat(40));
    expect(checkHashName('0'.repeat(64), 'oid')).toBe('0'.repeat(64));
    for (const bad of ['a'.repeat(39), 'A'.repeat(40), '../../victim', `${'a'.repeat(40)}/..`, 42]) expect(codeOf(() => checkHashName(bad, 'oid'))).toBe('HOSTILE_FILE');
  });
});

describe('core/paths: isInside', () => {
  it('compares resolved paths, symlinks included, for paths that do not exist yet', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-paths-'));
    mkdirSync(join(d, 'parent', 'model'), { recursive: true });
    symlinkSync(join(d, 'parent'), join(d, 'link'));
    expect(isInside(join(d, 'parent', 'model'), join(d, 'parent'))).toBe(true);
    expect(isInside(join(d, 'link', 'model', 'new', 'deeper'), join(d, 'parent'))).toBe(true);
    expect(isInside(join(d, 'parent'), join(d, 'parent', 'model'))).toBe(false);
    expect(isInside(join(d, 'parentx'), join(d, 'parent'))).toBe(false);
  });
});

describe('core/paths: makeDirs', () => {
  it('makes missing parents and accepts an existing folder', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-paths-'));
    makeDirs(join(d, 'a', 'b', 'c'));
    makeDirs(join(d, 'a', 'b', 'c'));
    expect(existsSync(join(d, 'a', 'b', 'c'))).toBe(true);
  });
  it('refuses a path under a file with exit 2', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-paths-'));
    writeFileSync(join(d, 'f'), 'x');
    expect(codeOf(() => makeDirs(join(d, 'f', 'sub')))).toBe('BAD_INPUT');
  });
  it('fails at once on procfs (Node recursive mkdir spins there forever)', () => {
    const t0 = Date.now();
    expect(codeOf(() => makeDirs('/proc/self/sub/x'))).toBe('PERMISSION');
    expect(Date.now() - t0).toBeLessThan(5000);
  });
});

describe('core/files: readInputText', () => {
  it('refuses a character device and a FIFO before reading, and a file over the cap unread', () => {
    const d = mkdtempSync(join(tmpdir(), 'cs-paths-'));
    expect(codeOf(() => readInputText('/dev/zero', 'report'))).toBe('BAD_INPUT');
    execFileSync('mkfifo', [join(d, 'fifo')]);
    expect(codeOf(() => readInputText(join(d, 'fifo'), 'config'))).toBe('BAD_INPUT');
    writeFileSync(join(d, 'big'), Buffer.alloc(2048));
    expect(codeOf(() => readInputText(join(d, 'big'), 'report', 1024))).toBe('BAD_INPUT');
    expect(readInputText(join(d, 'big'), 'report', 4096).length).toBe(2048);
  });
});
