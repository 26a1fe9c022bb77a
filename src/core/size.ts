/** Byte counts: as options take them, and as azbk shows them. */

/**
 * Parses a number of bytes as options take it: a number (decimals allowed) with an optional K, M,
 * G or T (powers of 1024), optionally followed by B, i or iB (512M, 512Mi, 1.5 GiB); with `perSecond`, an
 * optional /s too. Rounded to whole bytes, never from above 0 down to 0; null when it is none.
 */
export function parseSize(s: string, perSecond = false): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT])?(?:iB?|B)?(\/s)?$/i.exec(s.trim());
  if (m === null || (m[3] !== undefined && !perSecond)) return null;
  const exact = Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] ?? ' ').toUpperCase());
  const n = exact > 0 ? Math.max(1, Math.round(exact)) : 0;
  return Number.isSafeInteger(n) ? n : null;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 -> "1.5 KiB" */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${UNITS[u]}`;
}
