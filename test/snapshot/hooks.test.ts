/**
 * The hooks' answers read (src/snapshot/snapshot.ts): a refusal explained where an engine's source says why (vLLM
 * serves its sleep and RPC routes only in its development mode), and what --before-snapshot released, measured, with a
 * warning when it released almost nothing.
 */
import { describe, expect, it } from 'vitest';
import { hookRefusalHint, hookReleaseText } from '../../src/snapshot/snapshot.js';

const GiB = 1 << 30;

describe('hookRefusalHint', () => {
  it("a 404 on vLLM's development routes names VLLM_SERVER_DEV_MODE (and --enable-sleep-mode for /sleep and /wake_up)", () => {
    expect(hookRefusalHint('http://127.0.0.1:8000/sleep?level=1', 404)).toMatch(/VLLM_SERVER_DEV_MODE=1.*--enable-sleep-mode/);
    expect(hookRefusalHint('http://127.0.0.1:8000/wake_up', 404)).toMatch(/--enable-sleep-mode/);
    const rpc = hookRefusalHint('http://127.0.0.1:8000/collective_rpc', 404);
    expect(rpc).toMatch(/VLLM_SERVER_DEV_MODE=1/);
    expect(rpc).not.toMatch(/was started with --enable-sleep-mode/);
  });

  it('says nothing it does not know: another status, another path, a URL it cannot read', () => {
    expect(hookRefusalHint('http://127.0.0.1:8000/sleep', 500)).toBeNull();
    expect(hookRefusalHint('http://127.0.0.1:8000/v1/sleep', 404)).toBeNull();
    expect(hookRefusalHint('http://127.0.0.1:8000/no-such-hook', 404)).toBeNull();
    expect(hookRefusalHint('not a url', 404)).toBeNull();
  });
});

describe('hookReleaseText', () => {
  it('says what was released of each memory, GPU first; no warning when it was something', () => {
    const t = hookReleaseText({ hostBytes: { before: 2 * GiB, after: 1.5 * GiB }, gpuBytes: { before: 17 * GiB, after: 1 * GiB } });
    expect(t.line).toBe('--before-snapshot released 16.0 GiB of GPU memory (17.0 GiB → 1.00 GiB) and 512 MiB of host memory (2.00 GiB → 1.50 GiB)');
    expect(t.warning).toBeNull();
  });

  it('GPU memory not measured is said so, never a zero', () => {
    const t = hookReleaseText({ hostBytes: { before: 300 << 20, after: 170 << 20 }, gpuBytes: null });
    expect(t.line).toMatch(/^--before-snapshot released 130 MiB of host memory \(300 MiB → 170 MiB\); GPU memory not measured/);
    expect(t.line).not.toMatch(/of GPU memory/);
  });

  it('a server that held 17 GiB and gave back under 1 % of it: the warning (memory that grew counts as nothing released)', () => {
    const t = hookReleaseText({ hostBytes: { before: 2 * GiB, after: 2.1 * GiB }, gpuBytes: { before: 15 * GiB, after: 14.95 * GiB } });
    expect(t.warning).toMatch(/^--before-snapshot was answered but the server released almost nothing \(51\.2 MiB of 17\.0 GiB\)/);
    expect(t.warning).toMatch(/--enable-memory-saver/);
  });

  it('no warning for a small server (under a GiB held), whatever it released', () => {
    expect(hookReleaseText({ hostBytes: { before: 200 << 20, after: 200 << 20 }, gpuBytes: null }).warning).toBeNull();
  });
});
