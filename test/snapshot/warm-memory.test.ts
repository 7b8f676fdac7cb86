// restore's warm-up of free memory: the plan (src/snapshot/warm-memory.ts: whether, how much, how many threads, and
// why not) and the addon's touching (native/src/memwarm.cc): every byte asked for faulted in on the threads asked
// for, all of it unmapped again, arguments checked. What it buys is measured, not asserted: bench/snapshot/warm-memory.sh.
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { requireNative } from '../../src/native.js';
import { planWarmMemory, WARM_MEMORY_MAX_THREADS } from '../../src/snapshot/warm-memory.js';

const GiB = 2 ** 30;
const base = { mode: 'auto' as const, hugePages: true, reporting: true, pageBytes: 2 * GiB, imageBytes: 2.1 * GiB, availableBytes: 100 * GiB, cores: 16 };

describe('planWarmMemory', () => {
  it('auto, in a VM that reports free pages, with --huge-pages: the page data and a quarter more, on up to 8 threads', () => {
    expect(planWarmMemory(base)).toEqual({ bytes: 2.5 * GiB, threads: WARM_MEMORY_MAX_THREADS });
    expect(planWarmMemory({ ...base, cores: 4 })).toEqual({ bytes: 2.5 * GiB, threads: 3 });
    expect(planWarmMemory({ ...base, cores: 1 })).toEqual({ bytes: 2.5 * GiB, threads: 1 });
    expect(planWarmMemory({ ...base, pageBytes: 4097 })).toEqual({ bytes: 4097 + 1025, threads: 8 });
  });

  it('auto elsewhere, off, an image without page data, too little memory: none, with the reason', () => {
    expect(planWarmMemory({ ...base, reporting: false })).toEqual({ skipped: expect.stringMatching(/no virtio-balloon free page reporting/) });
    expect(planWarmMemory({ ...base, hugePages: false })).toEqual({ skipped: expect.stringMatching(/without --huge-pages/) });
    expect(planWarmMemory({ ...base, mode: 'off' })).toEqual({ skipped: '--warm-memory off' });
    expect(planWarmMemory({ ...base, pageBytes: 0 })).toEqual({ skipped: 'the image holds no page data' });
    // the image, the warmed memory and 1 GiB must fit what is available
    expect(planWarmMemory({ ...base, availableBytes: 5.5 * GiB })).toEqual({ skipped: expect.stringMatching(/of memory available, .* needed to warm/) });
    expect(planWarmMemory({ ...base, availableBytes: 5.6 * GiB })).toEqual({ bytes: 2.5 * GiB, threads: 8 });
    expect(planWarmMemory({ ...base, availableBytes: null })).toEqual({ bytes: 2.5 * GiB, threads: 8 });
  });

  it('on: wherever, with or without huge pages', () => {
    expect(planWarmMemory({ ...base, mode: 'on', reporting: false, hugePages: false })).toEqual({ bytes: 2.5 * GiB, threads: 8 });
  });
});

/** This process's resident anonymous memory (RssAnon), bytes. */
const rssAnon = (): number => Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

describe('warmMemory (native)', () => {
  const a = requireNative('test');

  it('faults in every byte asked for (rounded up to 2 MiB) on the threads asked for, then unmaps it all', async () => {
    const before = rssAnon();
    const r = await a.warmMemory({ bytes: 64 << 20, threads: 4 });
    expect(r).toMatchObject({ bytes: 64 << 20, threads: 4 });
    expect(r.touchSeconds).toBeGreaterThan(0);
    expect(r.seconds).toBeGreaterThanOrEqual(r.touchSeconds);
    // nothing of it is left mapped (other allocations of this process move RssAnon by far less than 64 MiB)
    expect(rssAnon() - before).toBeLessThan(32 << 20);
    // 3 bytes: one 2 MiB share; more threads than 2 MiB shares: one thread a share; 4 KiB pages when asked
    expect(await a.warmMemory({ bytes: 3, threads: 8 })).toMatchObject({ bytes: 2 << 20, threads: 1 });
    expect(await a.warmMemory({ bytes: (6 << 20) - 1, threads: 16, hugePages: false })).toMatchObject({ bytes: 6 << 20, threads: 3 });
  });

  it('arguments checked before anything is touched', () => {
    expect(() => a.warmMemory({ bytes: 0 })).toThrow(/warmMemory: options.bytes expected a byte count from 1 to 2\^40/);
    expect(() => a.warmMemory({ bytes: 2 ** 41 })).toThrow(/options.bytes expected a byte count/);
    expect(() => a.warmMemory({ bytes: -1 })).toThrow(/options.bytes/);
    expect(() => a.warmMemory({ bytes: 1.5 })).toThrow(/options.bytes/);
    expect(() => a.warmMemory({ bytes: 4096, threads: 0 })).toThrow(/options.threads/);
    expect(() => a.warmMemory({ bytes: 4096, threads: 257 })).toThrow(/options.threads/);
    expect(() => (a.warmMemory as unknown as (x: unknown) => unknown)(undefined)).toThrow(/warmMemory: options expected/);
  });
});
