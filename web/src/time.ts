// Pure time helpers: "3 hours ago", "2 h 5 min", exact times in the account's time zone.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "just now", "5 minutes ago", "3 hours ago", "yesterday", "4 days ago"; future times
 * (a dag's clock a little ahead) read as "just now". */
export function relativeTime(then: number, now: number): string {
  const ago = now - then;
  if (ago < 45_000) return 'just now';
  if (ago < 90_000) return 'a minute ago';
  if (ago < HOUR) return `${Math.round(ago / MINUTE)} minutes ago`;
  if (ago < 1.5 * HOUR) return 'an hour ago';
  if (ago < DAY) return `${Math.round(ago / HOUR)} hours ago`;
  if (ago < 2 * DAY) return 'yesterday';
  if (ago < 30 * DAY) return `${Math.round(ago / DAY)} days ago`;
  if (ago < 60 * DAY) return 'a month ago';
  if (ago < 365 * DAY) return `${Math.round(ago / (30 * DAY))} months ago`;
  const years = Math.round(ago / (365 * DAY));
  return years <= 1 ? 'a year ago' : `${years} years ago`;
}

/** A length of time, two units at most: "45 s", "12 min", "2 h 5 min", "3 d 4 h". */
export function duration(ms: number): string {
  if (ms < 1000) return 'under 1 s';
  const total = Math.round(ms / 1000);
  if (total < 60) return `${total} s`;
  const minutes = Math.floor(total / 60);
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  const restMin = minutes % 60;
  if (hours < 24) return restMin ? `${hours} h ${restMin} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  const restH = hours % 24;
  return restH ? `${days} d ${restH} h` : `${days} d`;
}

/** Minutes of battery left as words: "about 5 h 12 min left". */
export function minutesLeft(minutes: number): string {
  return `about ${duration(minutes * MINUTE)} left`;
}

const formats = new Map<string, Intl.DateTimeFormat>();

/** The time zone the dashboard shows times in: the account's preference when the browser
 * knows it, else the browser's own. */
export function usableTimeZone(zone: string | null | undefined): string | undefined {
  if (!zone) return undefined;
  try {
    new Intl.DateTimeFormat('en-GB', { timeZone: zone });
    return zone;
  } catch {
    return undefined;
  }
}

/** "Fri 27 Nov 2026, 05:00:12 CET" in `zone` (undefined: the browser's zone). */
export function exactTime(ms: number, zone?: string): string {
  const key = zone ?? '';
  let f = formats.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      weekday: 'short',
      day: 'numeric',
      month: 'short',
      year: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      timeZoneName: 'short',
      ...(zone ? { timeZone: zone } : {}),
    });
    formats.set(key, f);
  }
  return f.format(new Date(ms));
}

const shortFormats = new Map<string, Intl.DateTimeFormat>();

/** "27 Nov, 08:33:09" in `zone`: for tables, where the year and zone are noise. */
export function shortTime(ms: number, zone?: string): string {
  const key = zone ?? '';
  let f = shortFormats.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', {
      day: 'numeric',
      month: 'short',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      ...(zone ? { timeZone: zone } : {}),
    });
    shortFormats.set(key, f);
  }
  return f.format(new Date(ms));
}

/** A short axis label: "14:00" for spans under two days, else "27 Nov". */
export function axisLabel(ms: number, spanMs: number, zone?: string): string {
  const opts: Intl.DateTimeFormatOptions =
    spanMs <= 2 * DAY ? { hour: '2-digit', minute: '2-digit' } : { day: 'numeric', month: 'short' };
  return new Intl.DateTimeFormat('en-GB', { ...opts, ...(zone ? { timeZone: zone } : {}) }).format(
    new Date(ms),
  );
}

/** Milliseconds of an RFC 3339 string; NaN for null or garbage. */
export function parseTime(text: string | null | undefined): number {
  return text ? Date.parse(text) : NaN;
}

export const units = { MINUTE, HOUR, DAY };
