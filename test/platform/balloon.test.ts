// Free page reporting from sysfs (src/platform/balloon.ts): a real Firecracker VM's virtio_balloon features (bit 5 set,
// fixtures/sysfs/virtio_balloon/firecracker-dev-vm.source), the same device without the bit, a second device, and
// machines with no balloon at all or one whose files cannot be read.
import { afterAll, describe, expect, it } from 'vitest';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePageReporting, VIRTIO_BALLOON_F_REPORTING } from '../../src/platform/balloon.js';

const real = join(__dirname, '..', '..', 'fixtures', 'sysfs', 'virtio_balloon', 'firecracker-dev-vm');
const root = mkdtempSync(join(tmpdir(), 'cs-balloon-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A driver folder holding these devices' features strings (and, as the kernel has, a non-device entry). */
function driver(name: string, devices: Record<string, string>): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'uevent'), '');
  for (const [dev, features] of Object.entries(devices)) {
    mkdirSync(join(dir, dev), { recursive: true });
    writeFileSync(join(dir, dev, 'features'), `${features}\n`);
  }
  return dir;
}

describe('freePageReporting', () => {
  const realFeatures = readFileSync(join(real, 'virtio0', 'features'), 'utf8').trim();
  const without = realFeatures.slice(0, VIRTIO_BALLOON_F_REPORTING) + '0' + realFeatures.slice(VIRTIO_BALLOON_F_REPORTING + 1);

  it("reads a real Firecracker VM's balloon: reporting negotiated (bit 5)", () => {
    expect(realFeatures[VIRTIO_BALLOON_F_REPORTING]).toBe('1');
    expect(freePageReporting(real)).toBe(true);
  });

  it('the same device without bit 5, and the bit on a second device only', () => {
    expect(freePageReporting(driver('off', { virtio0: without }))).toBe(false);
    expect(freePageReporting(driver('second', { virtio0: without, virtio3: realFeatures }))).toBe(true);
    // a features string too short to hold bit 5 (an old kernel printing 32 bits is long enough; this is not)
    expect(freePageReporting(driver('short', { virtio0: '0110' }))).toBe(false);
  });

  it('no balloon, an empty driver folder, an entry that is not a device, an unreadable file: false', () => {
    expect(freePageReporting(join(root, 'absent'))).toBe(false);
    expect(freePageReporting(driver('empty', {}))).toBe(false);
    const odd = driver('odd', {});
    cpSync(join(real, 'virtio0'), join(odd, 'module'), { recursive: true }); // named as no device is
    expect(freePageReporting(odd)).toBe(false);
    const locked = driver('locked', { virtio0: realFeatures });
    chmodSync(join(locked, 'virtio0'), 0o000);
    try {
      // root reads through a mode of 0: only where the file truly cannot be read is the answer false
      let readable = true;
      try {
        readFileSync(join(locked, 'virtio0', 'features'));
      } catch {
        readable = false;
      }
      expect(freePageReporting(locked)).toBe(readable);
    } finally {
      chmodSync(join(locked, 'virtio0'), 0o755);
    }
  });
});
