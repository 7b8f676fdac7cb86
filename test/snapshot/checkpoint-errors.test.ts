/**
 * A failed cuCheckpointProcess* call explained (src/snapshot/native.ts checkpointHint): each driver error users met on
 * NVIDIA's cuda-checkpoint tracker (and gVisor's) gets what it meant there and what to do, the source named; an error
 * nothing is known about gets none (never a guess). End to end through the real addon against the stand-in libcuda
 * (test/fixtures/stub-driver/), which fails lock, checkpoint or restore with the CUresult the test names.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpointHint, type CheckpointAction } from '../../src/snapshot/native.js';
import { stubDriver } from '../helpers/stub-driver.js';

describe('checkpointHint: what a driver error meant where users met it', () => {
  it.each([
    ["CUDA_ERROR_NOT_SUPPORTED", "checkpoint", /UVM\/managed memory, CUDA IPC memory.*575\.57\.08 \(NVIDIA\/cuda-checkpoint#34\).*#51/],
    ['CUDA_ERROR_NOT_SUPPORTED', 'lock', /cuda-checkpoint#34/],
    ['CUDA_ERROR_NOT_SUPPORTED', 'restore', /NVIDIA\/cuda-checkpoint#18.*#12.*#27.*--gpus/],
    ['CUDA_ERROR_OPERATING_SYSTEM', 'lock', /inside a container \(runc and gVisor alike\).*cuda-checkpoint#37, google\/gvisor#12600.*on the host/],
    ['CUDA_ERROR_NOT_PERMITTED', 'checkpoint', /as root.*cuda-checkpoint#25: `nvidia-smi -pm 1`/],
    ['CUDA_ERROR_ILLEGAL_STATE', 'unlock', /lock needs RUNNING, checkpoint LOCKED, restore CHECKPOINTED, unlock LOCKED/],
    ['CUDA_ERROR_TIMEOUT', 'lock', /--lock-timeout/],
  ] as Array<[string, CheckpointAction, RegExp]>)('%s on %s', (code, action, want) => {
    expect(checkpointHint(code, action)).toMatch(want);
  });

  it('says nothing it does not know: other errors, a timeout outside lock, no code at all', () => {
    expect(checkpointHint('CUDA_ERROR_UNKNOWN', 'checkpoint')).toBeNull();
    expect(checkpointHint('CUDA_ERROR_TIMEOUT', 'restore')).toBeNull();
    expect(checkpointHint(undefined, 'lock')).toBeNull();
  });
});

describe('through the real addon and a stand-in driver that fails the call', () => {
  const { withStubs, dir, dispose } = stubDriver();
  afterAll(dispose);
  const call = (action: string, env: Record<string, string>) =>
    withStubs(
      `const { addonNative } = await import(dist + 'snapshot/native.js');
       return await addonNative.checkpoint(4242, ${JSON.stringify(action)}).then(() => 'ok', (e) => ({ code: e.code, message: e.message, hint: e.hint ?? null, nativeCode: e.details?.nativeCode ?? null }));`,
      { STUB_CUDA_LOG: join(dir, 'restore.log'), ...env },
    ) as { code: string; message: string; hint: string | null; nativeCode: string | null } | 'ok';

  it('lock refused with CUDA_ERROR_NOT_SUPPORTED (801): the driver’s words, its code, and the hint', () => {
    const r = call('lock', { STUB_CUDA_LOCK_RESULT: '801' });
    expect(r).toMatchObject({ code: 'ENV', nativeCode: 'CUDA_ERROR_NOT_SUPPORTED', message: 'pid 4242: cuCheckpointProcess lock of pid 4242 failed: CUDA_ERROR_NOT_SUPPORTED (801): operation not supported' });
    expect(r !== 'ok' && r.hint).toMatch(/cuda-checkpoint#34/);
  });

  it('checkpoint refused by an OS call (304), restore refused (801): each its own hint', () => {
    const os = call('checkpoint', { STUB_CUDA_CHECKPOINT_RESULT: '304' });
    expect(os).toMatchObject({ nativeCode: 'CUDA_ERROR_OPERATING_SYSTEM', hint: expect.stringMatching(/google\/gvisor#12600/) });
    const restore = call('restore', { STUB_CUDA_RESTORE_FAILS: '801' });
    expect(restore).toMatchObject({ nativeCode: 'CUDA_ERROR_NOT_SUPPORTED', hint: expect.stringMatching(/a vLLM server on 2 GPUs \(#27\)/) });
  });

  it('an error nothing is known about keeps the driver’s words and no made-up hint; a call that succeeds is untouched', () => {
    expect(call('lock', { STUB_CUDA_LOCK_RESULT: '999' })).toMatchObject({ code: 'ENV', nativeCode: 'CUDA_ERROR_UNKNOWN', hint: null });
    expect(call('lock', {})).toBe('ok');
  });
});
