// The outage timeline: hand-drawn SVG bands (power on / off / unknown), a lane for lost
// contact and ticks for low-battery warnings, with an HTML axis so that text never scales.

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
  // 24 h: every 6 hours; 7 d: every day; 30 d: every 5 days.
  const days = Math.round(span / 86_400_000);
  const ticks = days >= 28 ? 6 : days >= 7 ? 7 : 4;
  const axis = h('div', { class: 'axis', 'aria-hidden': 'true' });
  for (let i = 0; i <= ticks; i++) {
    const at = t.from + (span * i) / ticks;
    const tick = h('span', { class: 'tick' }, i === ticks ? 'now' : axisLabel(at, span, zone));
    tick.style.left = `${(100 * i) / ticks}%`;
    axis.appendChild(tick);
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
  return h('figure', { class: 'chart' }, h('div', { class: 'plot' }, svg, axis), legend);
}

/** A small line of battery readings (percent over time). */
export function sparkline(points: { at: number; percent: number }[], label: string): SVGSVGElement {
  const svg = s('svg', { viewBox: '0 0 300 60', preserveAspectRatio: 'none', class: 'sparkline', role: 'img', 'aria-label': label });
  svg.appendChild(s('title', null, label));
  if (points.length === 0) return svg;
  const t0 = points[0].at;
  const t1 = points[points.length - 1].at;
  const px = (at: number) => (t1 > t0 ? ((at - t0) / (t1 - t0)) * 296 + 2 : 150);
  const py = (p: number) => 58 - (Math.min(100, Math.max(0, p)) / 100) * 56;
  const d = points.map((p, i) => `${i ? 'L' : 'M'}${px(p.at).toFixed(1)} ${py(p.percent).toFixed(1)}`).join(' ');
  svg.appendChild(s('path', { d, class: 'spark', fill: 'none', 'vector-effect': 'non-scaling-stroke' }));
  const last = points[points.length - 1];
  svg.appendChild(s('circle', { cx: px(last.at), cy: py(last.percent), r: 3, class: 'spark-dot' }));
  return svg;
}
