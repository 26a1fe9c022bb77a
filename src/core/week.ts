/** Days of the week and times of day, as the policy options write them. Pure. */

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const FULL_NAMES = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday'];

/** The day number of "mon" or "monday" (any case), or -1: another word that begins like a day ("monkey") is none. */
function dayNumber(name: string): number {
  const d = name.trim();
  const short = DAYS.indexOf(d);
  return short >= 0 ? short : FULL_NAMES.indexOf(d);
}

/** Parses "mon-fri", "mon,wed,fri" or "sat-sun" into day numbers (0 = Sunday), sorted; null when malformed. */
export function parseDays(s: string): number[] | null {
  const out = new Set<number>();
  for (const part of s.toLowerCase().split(',')) {
    const [a, b, extra] = part.split('-').map(dayNumber);
    if (a === undefined || a < 0 || (b !== undefined && b < 0) || extra !== undefined) return null;
    for (let d = a; ; d = (d + 1) % 7) {
      out.add(d);
      if (b === undefined || d === b) break;
    }
  }
  return [...out].sort((x, y) => x - y);
}

/** "mon,tue,wed" for day numbers. */
export function dayNames(days: readonly number[]): string {
  return days.map((d) => DAYS[d]).join(',');
}

/** Parses "9:05" or "09:05" into minutes after midnight (00:00-23:59); null when malformed. */
export function parseClock(s: string): number | null {
  const m = /^(\d{1,2}):(\d{2})$/.exec(s.trim());
  if (m === null) return null;
  const h = Number(m[1]);
  const min = Number(m[2]);
  return h < 24 && min < 60 ? h * 60 + min : null;
}

/** "09:05" for minutes after midnight. */
export function formatClock(minutes: number): string {
  return `${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}
