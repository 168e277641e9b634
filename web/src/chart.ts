// The outage timeline: hand-drawn SVG bands (power on / off / unknown), a lane for lost
// contact and ticks for low-battery warnings; and the battery's charge over the same
// window. Both have an HTML axis so that text never scales.

import { h, s } from './dom';
import type { Timeline } from './outages';
import { axisLabel, duration, exactTime } from './time';

const W = 1000;
const MIN_W = 6; // a two-second outage stays visible on a 30-day chart (~2 px on a phone)

const POWER_LABEL = { on: 'Power on', off: 'Power off', unknown: 'No data' } as const;

export function timelineChart(t: Timeline, zone: string | undefined, label: string): HTMLElement {
  const span = t.until - t.from;
  const x = (ms: number) => ((Math.min(Math.max(ms, t.from), t.until) - t.from) / span) * W;
  const svg = s('svg', {
    viewBox: `0 0 ${W} 48`,
    preserveAspectRatio: 'none',
    class: 'timeline',
    role: 'img',
    'aria-label': label,
  });
  svg.appendChild(s('title', null, label));
  const ranges = (a: number, b: number) => `${exactTime(a, zone)} – ${exactTime(b, zone)}`;
  // Off bands last, so that a thin outage is drawn over its neighbours.
  const bands = [...t.bands].sort((a, b) => Number(a.power === 'off') - Number(b.power === 'off'));
  for (const b of bands) {
    let x0 = x(b.start);
    let w = x(b.end) - x0;
    if (b.power === 'off' && w < MIN_W) {
      w = MIN_W;
      x0 = Math.min(x0, W - MIN_W); // an outage that just ended stays inside the chart
    }
    svg.appendChild(
      s(
        'rect',
        { x: x0.toFixed(2), y: 0, width: w.toFixed(2), height: 32, class: `band ${b.power}`, 'data-power': b.power },
        s('title', null, `${POWER_LABEL[b.power]}: ${ranges(b.start, b.end)} (${duration(b.end - b.start)})`),
      ),
    );
  }
  for (const g of t.gaps) {
    const end = g.end ?? t.until;
    const x0 = Math.min(x(g.start), W - MIN_W);
    svg.appendChild(
      s(
        'rect',
        { x: x0.toFixed(2), y: 36, width: Math.max(MIN_W, x(end) - x0).toFixed(2), height: 12, class: 'gap', 'data-gap': '' },
        s('title', null, `No contact: ${ranges(g.start, end)}`),
      ),
    );
  }
  for (const at of t.batteryLow) {
    svg.appendChild(
      s(
        'rect',
        { x: (x(at) - 1).toFixed(2), y: 0, width: 3, height: 32, class: 'battery-low', 'data-battery-low': '' },
        s('title', null, `Battery low: ${exactTime(at, zone)}`),
      ),
    );
  }
  const legend = h(
    'ul',
    { class: 'legend' },
    h('li', null, h('span', { class: 'swatch on' }), 'Power on'),
    h('li', null, h('span', { class: 'swatch off' }), 'Power off'),
    h('li', null, h('span', { class: 'swatch unknown' }), 'No data'),
    h('li', null, h('span', { class: 'swatch gap' }), 'No contact'),
    t.batteryLow.length ? h('li', null, h('span', { class: 'swatch battery-low' }), 'Battery low') : null,
  );
  return h('figure', { class: 'chart' }, h('div', { class: 'plot' }, svg, timeAxis(t.from, t.until, zone)), legend);
}

/** The HTML time axis under a chart of [from, until] (ending now). */
function timeAxis(from: number, until: number, zone: string | undefined): HTMLElement {
  const span = until - from;
  // 24 h: every 6 hours; 7 d: every day; 30 d: every 5 days.
  const days = Math.round(span / 86_400_000);
  const ticks = days >= 28 ? 6 : days >= 7 ? 7 : 4;
  const axis = h('div', { class: 'axis', 'aria-hidden': 'true' });
  for (let i = 0; i <= ticks; i++) {
    const at = from + (span * i) / ticks;
    const tick = h('span', { class: 'tick' }, i === ticks ? 'now' : axisLabel(at, span, zone));
    tick.style.left = `${(100 * i) / ticks}%`;
    axis.appendChild(tick);
  }
  return axis;
}

export interface BatteryPoint {
  at: number;
  percent: number;
  onBattery: boolean | null;
}

const BH = 100; // the battery chart's height in viewBox units; 0 % at the bottom

/** The battery's charge over [from, until]: a line through the readings (oldest first),
 * shaded where the dag ran on its battery, with the timeline's HTML axis. The line and its
 * end dot keep their width however the SVG is stretched (non-scaling strokes). */
export function batteryChart(
  points: BatteryPoint[],
  from: number,
  until: number,
  zone: string | undefined,
  label: string,
): HTMLElement {
  const x = (ms: number) => (((Math.min(Math.max(ms, from), until) - from) / (until - from)) * W).toFixed(1);
  const y = (p: number) => (BH - 2 - (Math.min(100, Math.max(0, p)) / 100) * (BH - 4)).toFixed(1);
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${BH}`,
    preserveAspectRatio: 'none',
    class: 'battery-chart',
    role: 'img',
    'aria-label': label,
    'data-points': points.length,
  });
  svg.appendChild(s('title', null, label));
  for (const p of [0, 50, 100]) {
    svg.appendChild(s('line', { x1: 0, x2: W, y1: y(p), y2: y(p), class: 'grid', 'vector-effect': 'non-scaling-stroke' }));
  }
  // From each reading on battery to the next one.
  points.forEach((p, i) => {
    if (p.onBattery !== true) return;
    const end = i + 1 < points.length ? points[i + 1].at : p.at;
    const x0 = Number(x(p.at));
    svg.appendChild(s('rect', { x: x0, y: 0, width: Math.max(2, Number(x(end)) - x0), height: BH, class: 'on-battery' }));
  });
  if (points.length) {
    const d = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.at)} ${y(p.percent)}`).join(' ');
    svg.appendChild(s('path', { d, class: 'charge', fill: 'none', 'vector-effect': 'non-scaling-stroke' }));
    const last = points[points.length - 1];
    // A zero-length line with round caps: a dot that stays round when stretched.
    svg.appendChild(s('path', { d: `M${x(last.at)} ${y(last.percent)} l0 0`, class: 'charge-dot', 'vector-effect': 'non-scaling-stroke' }));
  }
  const scale = h('div', { class: 'y-axis', 'aria-hidden': 'true' }, h('span', null, '100 %'), h('span', null, '0 %'));
  const legend = h(
    'ul',
    { class: 'legend' },
    h('li', null, h('span', { class: 'swatch charge' }), 'Charge'),
    h('li', null, h('span', { class: 'swatch on-battery' }), 'On battery'),
  );
  return h('figure', { class: 'chart battery-figure' }, h('div', { class: 'plot' }, svg, scale, timeAxis(from, until, zone)), legend);
}
