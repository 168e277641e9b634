// Pure history arithmetic: from a device's events to the timeline's bands, its outages
// and its contact gaps. Like the API's uptime, an outage runs from a power_off to the next
// power_on by the dag's observed time, and time before the first power report is unknown.

import type { DagEvent } from './types';

export type Power = 'on' | 'off' | 'unknown';

export interface Band {
  start: number;
  end: number;
  power: Power;
}

export interface Outage {
  start: number; // may lie before the window (an outage that began earlier)
  end: number | null; // null: still off
  durationMs: number; // up to `until` when ongoing
}

export interface Gap {
  start: number;
  end: number | null;
}

export interface Timeline {
  from: number;
  until: number;
  bands: Band[];
  outages: Outage[];
  gaps: Gap[];
  batteryLow: number[];
}

const byTime = (a: DagEvent, b: DagEvent) =>
  Date.parse(a.observedAt) - Date.parse(b.observedAt) || Number(a.id) - Number(b.id);

/**
 * The window [from, until] of a device's history.
 * @param events every event observed in the window, in any order
 * @param before the newest power event observed before `from` (null when none)
 */
export function timeline(
  events: DagEvent[],
  before: DagEvent | null,
  from: number,
  until: number,
): Timeline {
  const sorted = events
    .filter((e) => {
      const t = Date.parse(e.observedAt);
      return t >= from && t <= until;
    })
    .sort(byTime);

  let power: Power = before ? (before.kind === 'power_off' ? 'off' : 'on') : 'unknown';
  let offSince: number | null =
    before && before.kind === 'power_off' ? Date.parse(before.observedAt) : null;
  let cursor = from;
  const bands: Band[] = [];
  const outages: Outage[] = [];
  const gaps: Gap[] = [];
  const batteryLow: number[] = [];
  let gapStart: number | null = null;
  let sawContactEvent = false;

  const push = (end: number) => {
    if (end <= cursor) return;
    const last = bands[bands.length - 1];
    if (last && last.power === power && last.end === cursor) last.end = end;
    else bands.push({ start: cursor, end, power });
    cursor = end;
  };

  for (const e of sorted) {
    const t = Date.parse(e.observedAt);
    switch (e.kind) {
      case 'power_off':
        if (power !== 'off') {
          push(t);
          power = 'off';
          offSince = t;
        }
        break;
      case 'power_on':
        if (power !== 'on') {
          push(t);
          if (power === 'off' && offSince !== null)
            outages.push({ start: offSince, end: t, durationMs: t - offSince });
          power = 'on';
          offSince = null;
        }
        break;
      case 'lost_contact':
        sawContactEvent = true;
        if (gapStart === null) gapStart = t;
        break;
      case 'back':
        // A "back" with no "lost" before it in the window: contact was lost earlier.
        if (gapStart === null && !sawContactEvent) gaps.push({ start: from, end: t });
        else if (gapStart !== null) gaps.push({ start: gapStart, end: t });
        sawContactEvent = true;
        gapStart = null;
        break;
      case 'battery_low':
        batteryLow.push(t);
        break;
    }
  }
  push(until);
  if (power === 'off' && offSince !== null)
    outages.push({ start: offSince, end: null, durationMs: until - offSince });
  if (gapStart !== null) gaps.push({ start: gapStart, end: null });
  outages.reverse(); // newest first, as a list reads
  return { from, until, bands, outages, gaps, batteryLow };
}

/** Percentage of the known time in the window with power; null when nothing is known. */
export function availability(t: Timeline): number | null {
  let known = 0;
  let on = 0;
  for (const b of t.bands) {
    if (b.power === 'unknown') continue;
    known += b.end - b.start;
    if (b.power === 'on') on += b.end - b.start;
  }
  return known > 0 ? (100 * on) / known : null;
}
