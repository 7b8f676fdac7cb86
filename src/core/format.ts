/**
 * Human formatting of durations, one format everywhere: 12 µs, 3.4 ms, 250 ms, 1.25 s, 12.3 s, 2 min 5 s,
 * 1 h 0 min. A value never rounds up into a form its unit does not use ("60.0 s", "1 min 60 s"): it moves up a
 * unit instead. JSON never uses these: seconds and bytes as numbers.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '—';
  const a = Math.abs(seconds);
  const sign = seconds < 0 ? '-' : '';
  if (a === 0) return '0 s';
  if (a < 0.0009995) return `${sign}${(a * 1e6).toFixed(0)} µs`;
  if (a < 0.9995) return `${sign}${(a * 1e3).toFixed(a < 0.00995 ? 2 : a < 0.0995 ? 1 : 0)} ms`;
  if (a < 59.95) return `${sign}${a.toFixed(a < 9.995 ? 2 : 1)} s`;
  const whole = Math.round(a);
  if (whole < 3600) return `${sign}${Math.floor(whole / 60)} min ${whole % 60} s`;
  const minutes = Math.round(a / 60);
  return `${sign}${Math.floor(minutes / 60)} h ${minutes % 60} min`;
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

/** One shell word: as it is when it needs no quoting, else single-quoted (a suggested command runs as printed). */
export function shellArg(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
