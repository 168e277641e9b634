// Pure: the battery readings of GET /v1/devices/{id}/battery as chart points, and the
// chart's text summary (what a screen reader says and everyone reads under the chart).

import type { BatteryPoint } from './chart';
import { exactTime } from './time';
import type { BatteryReading } from './types';

/** The readings that have a charge, oldest first (as dagd sends them). */
export function batteryPoints(readings: BatteryReading[]): BatteryPoint[] {
  const out: BatteryPoint[] = [];
  for (const r of readings) {
    const at = Date.parse(r.at);
    if (typeof r.percent === 'number' && Number.isFinite(at)) {
      out.push({ at, percent: r.percent, onBattery: r.onBattery });
    }
  }
  return out;
}

// A no-break space: "100 %" never wraps between the number and its unit.
const pct = (p: number) => `${Math.round(p)}\u00a0%`;

/** "3 readings in the last 7 days: 100 % at the first, 87 % at the latest (...); lowest
 * 80 % (...)". `words` names the window ("the last 7 days"). */
export function batterySummary(points: BatteryPoint[], words: string, zone?: string): string {
  if (points.length === 0) return `No battery readings in ${words}.`;
  const first = points[0];
  const last = points[points.length - 1];
  let low = first;
  for (const p of points) if (p.percent < low.percent) low = p;
  const n = points.length;
  const head = `${n} battery reading${n === 1 ? '' : 's'} in ${words}`;
  if (n === 1) return `${head}: ${pct(last.percent)} (${exactTime(last.at, zone)}).`;
  return (
    `${head}: ${pct(first.percent)} at the first, ${pct(last.percent)} at the latest ` +
    `(${exactTime(last.at, zone)}); lowest ${pct(low.percent)} (${exactTime(low.at, zone)}).`
  );
}
