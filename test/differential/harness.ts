/**
 * The differential harness (issue #11): the same file through coldstart (`convertCheckpoint`, in-process) and
 * through `torch.load(weights_only=True)` (test/differential/oracle.py, one long-lived venv Python), compared on
 * verdict and, where both accept, on names, dtypes, shapes and the SHA-256 of every tensor's bytes.
 *
 * Outcomes:
 *  - agree       both refuse, or both accept with the same tensors (aliases coldstart dropped are checked
 *                against the tensor they alias)
 *  - documented  coldstart refuses what torch accepts, for a reason listed in STRICTER (each is in docs/convert.md)
 *  - disagree    anything else: coldstart accepts what torch refuses, different bytes, a crash (an exception that
 *                is not a ColdstartError), or a refusal for a reason not in STRICTER
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ColdstartError } from '../../src/core/errors.js';
import { convertCheckpoint } from '../../src/convert/convert.js';
import { readHeader } from '../../src/formats/safetensors.js';

export interface TensorFacts {
  dtype: string;
  shape: number[];
  sha256: string | null;
}
export interface Verdict {
  verdict: 'ok' | 'refused';
  error?: string;
  widened?: boolean;
  tensors?: Record<string, TensorFacts> | null;
  type?: string;
  crash?: boolean;
  /** coldstart only: the checkpoint's byte order. */
  byteorder?: string;
}
export interface Comparison {
  kind: 'agree' | 'documented' | 'disagree';
  why: string;
  coldstart: Verdict;
  torch: Verdict;
}

/** Reasons coldstart is deliberately stricter than torch.load(weights_only=True) (docs/convert.md "Differences"). */
export const STRICTER: Array<{ re: RegExp; why: string }> = [
  { re: /which safetensors cannot hold|safetensors \(UTF-8 JSON\) cannot hold|lone UTF-16 surrogate/, why: 'safetensors cannot hold it (complex, quantized, sparse, nested, lone-surrogate names)' },
  { re: /is a tensor subclass/, why: 'tensor subclasses are refused (convert to a plain tensor first)' },
  { re: /BUILD \(__setstate__\) applied to a tensor/, why: 'BUILD on a tensor (torch applies set_(), swapping the data)' },
  { re: /two formats in one file|two archives in one file/, why: 'polyglot files (two formats at once)' },
  { re: /would write \d+ bytes from \d+ bytes of storage/, why: 'amplification (stride-0 / overlapping views) past the stated multiple' },
  { re: /malformed pickle framing/, why: 'pickle frames enforced as CPython\'s pure-Python unpickler does (the C one ignores them)' },
  { re: /several entries hold tensors|no dict of tensors found/, why: 'the weights are not a single dict of tensors (torch returns some other object)' },
  { re: /NEWOBJ on torch\.Tensor/, why: 'NEWOBJ on torch.Tensor (the legacy constructor: torch.save never writes it)' },
  { re: /CRC|data descriptor|local header|overlaps|names a different file|is compressed|encrypt|general-purpose flag|data\.pkl records|two entries named|ZIP64 end record|invalid zip archive|central directory|contains a backslash|contains a NUL|path traversal|absolute path|stray bytes|unexpected bytes after/, why: 'zip / layout checks stricter than miniz (CRC, header agreement, overlaps, trailing data)' },
  { re: /missing from the storage table/, why: 'legacy storage referenced but not in the storage table (torch returns uninitialised memory for it)' },
  { re: /storage location is not a string/, why: 'storage locations must be strings (torch.load without map_location needs one)' },
  { re: /legacy sys_info record is not a dict/, why: 'legacy sys_info must be a dict (it carries the byte order)' },
  { re: /is referenced with two different types or sizes/, why: 'one storage referenced with two types or sizes (torch keeps the first)' },
  { re: /pickle protocol \d+ is newer than this reader/, why: 'PROTO > 5 (torch only warns)' },
  { re: /declares \d+ elements in the pickle but \d+ in its record/, why: 'legacy storage count disagrees between pickle and record (torch trusts the record)' },
  { re: /storage reference without a storage class/, why: 'a storage reference must name a storage class' },
  { re: /is not a plain identifier/, why: 'storage keys must be plain identifiers (no path characters)' },
  { re: /TorchScript archive/, why: 'TorchScript archives (torch.jit.load territory)' },
];

const ORACLE = fileURLToPath(new URL('./oracle.py', import.meta.url));

/** One venv Python answering one JSON line per path. */
export class Oracle {
  private child: ChildProcessWithoutNullStreams;
  private buf = '';
  private waiting: Array<(v: Verdict) => void> = [];
  constructor(python: string) {
    this.child = spawn(python, [ORACLE], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, PYTHONWARNINGS: 'ignore' } });
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.waiting.shift()?.(JSON.parse(line) as Verdict);
      }
    });
    this.child.stderr.resume();
  }
  ask(path: string): Promise<Verdict> {
    return new Promise((res, rej) => {
      if (this.child.exitCode !== null) return rej(new Error(`oracle exited (${this.child.exitCode})`));
      this.waiting.push(res);
      this.child.stdin.write(`${path}\n`);
    });
  }
  close(): void {
    this.child.stdin.end();
  }
}

function sha256Range(path: string, start: number, len: number): string {
  const h = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(Math.min(len, 1 << 20) || 1);
    let done = 0;
    while (done < len) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, len - done), start + done);
      if (n <= 0) throw new Error('short read');
      h.update(buf.subarray(0, n));
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest('hex');
}

/** coldstart's verdict for one file (converted into `workDir`, which is emptied afterwards). */
export async function coldstartVerdict(path: string, workDir: string): Promise<Verdict> {
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  const out = join(workDir, 'out.safetensors');
  try {
    const r = await convertCheckpoint({ input: path, output: out, fsync: false, force: true });
    const tensors: Record<string, TensorFacts> = {};
    for (const f of r.files) {
      const h = readHeader(f.path);
      for (const t of h.tensors) {
        tensors[t.name] = { dtype: t.dtype, shape: t.shape, sha256: sha256Range(f.path, h.dataOffset + t.begin, t.end - t.begin) };
      }
    }
    for (const [removed, kept] of Object.entries(r.droppedAliases)) if (tensors[kept]) tensors[removed] = tensors[kept]!;
    return { verdict: 'ok', tensors, byteorder: r.byteorder };
  } catch (e) {
    if (e instanceof ColdstartError) return { verdict: 'refused', error: `${e.code}: ${e.message}` };
    return { verdict: 'refused', error: `CRASH ${(e as Error)?.name}: ${(e as Error)?.message}`, crash: true };
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }
}

export function compare(c: Verdict, t: Verdict): Comparison {
  const r = (kind: Comparison['kind'], why: string): Comparison => ({ kind, why, coldstart: c, torch: t });
  if (c.crash) return r('disagree', `coldstart crashed: ${c.error}`);
  if (c.verdict === 'refused' && t.verdict === 'refused') return r('agree', 'both refuse');
  if (c.verdict === 'refused') {
    // the widened reference is torch's full unpickler, whose find_class maps any "*Storage" name to a storage
    // type whatever its module; weights_only (and coldstart) refuse such globals
    if (t.widened && /is not on the weights allowlist|storage reference without a storage class/.test(c.error ?? '')) return r('documented', 'widened reference only: torch\'s full unpickler accepts any module for *Storage names');
    const s = STRICTER.find((x) => x.re.test(c.error ?? ''));
    return s ? r('documented', s.why) : r('disagree', `coldstart refuses what torch loads: ${c.error}`);
  }
  if (t.verdict === 'refused') return r('disagree', `coldstart accepts what torch refuses (${t.error})`);
  if (!t.tensors) return r('agree', `both accept (torch returns a ${t.type}; coldstart picked a wrapped dict)`);
  const names = Object.keys(c.tensors!).sort();
  const tnames = Object.keys(t.tensors).sort();
  if (names.join('\n') !== tnames.join('\n')) return r('disagree', `different tensor names: coldstart [${names.join(', ')}] torch [${tnames.join(', ')}]`);
  for (const n of names) {
    const a = c.tensors![n]!;
    const b = t.tensors[n]!;
    if (a.dtype !== b.dtype || a.shape.join(',') !== b.shape.join(',')) return r('disagree', `"${n}": coldstart ${a.dtype}${JSON.stringify(a.shape)} torch ${b.dtype}${JSON.stringify(b.shape)}`);
    if (b.sha256 !== null && a.sha256 !== b.sha256) {
      // torch does not byteswap big-endian untyped storages (float8, uint16/32/64); coldstart swaps by element size
      if (c.byteorder === 'big' && /^(U16|U32|U64|F8_E4M3|F8_E5M2)$/.test(a.dtype)) continue;
      return r('disagree', `"${n}": different bytes`);
    }
  }
  return r('agree', t.widened ? 'same tensors (reference: allowlist-restricted CPython unpickler, torch lacks an opcode)' : 'same tensors');
}
