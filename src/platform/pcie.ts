/** Per-lane transfer rate (GT/s) and line-code efficiency of each PCIe generation. */
const GEN: Record<number, { gts: number; efficiency: number }> = {
  1: { gts: 2.5, efficiency: 8 / 10 },
  2: { gts: 5, efficiency: 8 / 10 },
  3: { gts: 8, efficiency: 128 / 130 },
  4: { gts: 16, efficiency: 128 / 130 },
  5: { gts: 32, efficiency: 128 / 130 },
  // Gen6: PAM4 with 256-byte FLITs carrying 242 bytes of payload (FEC + CRC).
  6: { gts: 64, efficiency: 242 / 256 },
};

/**
 * Raw link bandwidth per direction in bytes/s for a generation and width (e.g. Gen5 x16 → 63.0 GB/s).
 * Real transfers see less (TLP headers, DMA); the loader's measured H2D is the practical limit.
 */
export function pcieBandwidth(gen: number, width: number): number | null {
  const g = GEN[gen];
  if (!g || !(width > 0)) return null;
  return (g.gts * 1e9 * width * g.efficiency) / 8;
}

export function formatDriverVersion(v: number | undefined): string | null {
  if (!v) return null;
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}
