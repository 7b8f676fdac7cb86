/** Human formatting of durations, sizes and rates. JSON never uses these: seconds and bytes as numbers. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  const a = Math.abs(seconds);
  if (a === 0) return '0 s';
  if (a < 1e-3) return `${(seconds * 1e6).toFixed(0)} µs`;
  if (a < 1) return `${(seconds * 1e3).toFixed(a < 0.01 ? 2 : a < 0.1 ? 1 : 0)} ms`;
  if (a < 60) return `${seconds.toFixed(a < 10 ? 2 : 1)} s`;
  const m = Math.floor(a / 60);
  const s = a - m * 60;
  return `${seconds < 0 ? '-' : ''}${m} min ${s.toFixed(0)} s`;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return '—';
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${UNITS[i]}`;
}

/** Rates are decimal GB/s (10^9), like every PCIe and disk spec sheet. */
export function formatRate(bytesPerSecond: number): string {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '—';
  if (bytesPerSecond >= 1e9) return `${(bytesPerSecond / 1e9).toFixed(2)} GB/s`;
  if (bytesPerSecond >= 1e6) return `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`;
  return `${(bytesPerSecond / 1e3).toFixed(1)} kB/s`;
}

export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return '—';
  return `${(fraction * 100).toFixed(fraction < 0.1 ? 1 : 0)}%`;
}
