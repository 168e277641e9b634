// A dag's page: its state, the outage timeline for 24 h / 7 d / 30 d, uptime, the list of
// outages, and its battery now and over the same period.

import { allEvents, api, lastPowerEventBefore } from '../api';
import { batteryPoints, batterySummary } from '../battery';
import { batteryChart, timelineChart } from '../chart';
import { h, mount } from '../dom';
import * as icons from '../icons';
import { live, upsert } from '../live';
import { timeline } from '../outages';
import { batteryText, connectionText, lookOf, stateIcon } from '../state';
import { duration, units } from '../time';
import type { Device } from '../types';
import { errorText, getZone, refreshTimes, statusLine, timeExact } from '../ui';
import { sinceLine } from './card';

const RANGES = [
  { days: 1, label: '24 h', words: 'the last 24 hours' },
  { days: 7, label: '7 d', words: 'the last 7 days' },
  { days: 30, label: '30 d', words: 'the last 30 days' },
] as const;

let chosenDays = 1; // remembered while the page is open

// dagd keeps a reading at most every 5 minutes (and one per power change): a month is
// about 8,640 of them, within the route's limit of 10,000.
const batteryLimit = (days: number) => Math.min(10_000, days * 300 + 500);
const BATTERY_RELOAD_MS = 5 * 60_000;

export function deviceView(id: string): { el: HTMLElement; dispose(): void } {
  const head = h('div', { class: 'device-head' });
  const stats = h('dl', { class: 'stats' });
  const chartBox = h('div', { class: 'chart-box' });
  const outages = h('div', { class: 'outages' });
  const batteryNow = h('div', { class: 'battery-box' });
  const batteryHistory = h('div', { class: 'battery-history' });
  const note = statusLine();
  const rangeButtons = RANGES.map((r) =>
    h(
      'button',
      {
        type: 'button',
        'aria-pressed': String(r.days === chosenDays),
        onclick: () => {
          chosenDays = r.days;
          rangeButtons.forEach((b, i) => b.setAttribute('aria-pressed', String(RANGES[i].days === chosenDays)));
          void loadHistory();
        },
      },
      r.label,
    ),
  );
  const el = h(
    'div',
    { class: 'page device-page' },
    h('a', { class: 'back', href: '#/' }, icons.chevronLeft(), 'Your dags'),
    head,
    note.el,
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'history-h' },
      h(
        'div',
        { class: 'section-head' },
        h('h2', { id: 'history-h' }, 'Power history'),
        h('div', { class: 'segmented', role: 'group', 'aria-label': 'Period' }, rangeButtons),
      ),
      stats,
      chartBox,
      h('h3', null, 'Outages'),
      outages,
    ),
    h('section', { class: 'panel', 'aria-labelledby': 'battery-h' }, h('h2', { id: 'battery-h' }, 'Battery'), batteryNow, batteryHistory),
  );

  let device: Device | undefined = live.get(id);
  let lastPower = '';
  let generation = 0;
  let reload: ReturnType<typeof setTimeout> | null = null;
  let batteryGeneration = 0;
  let batteryLoadedAt = 0;
  let lastPercent: number | undefined;

  function renderHead(): void {
    if (!device) {
      mount(head, h('h1', null, 'Loading…'));
      return;
    }
    const look = lookOf(device);
    const conn = connectionText(device);
    head.className = `device-head state-${look.key}`;
    head.dataset.state = look.key;
    mount(
      head,
      stateIcon(look, true),
      h(
        'div',
        null,
        h('h1', { class: 'name' }, device.name),
        h('p', { class: 'state-line' }, h('strong', { class: 'state-title' }, look.title), ' ', h('span', { class: `badge ${conn.cls}` }, conn.text)),
        h('p', { class: 'explanation' }, look.explanation),
        sinceLine(device),
      ),
    );
    document.title = `${device.name} · detectordag`;
  }

  function renderBattery(): void {
    if (!device) return;
    const text = batteryText(device);
    mount(
      batteryNow,
      text
        ? h('p', { class: `battery${device.battery?.low ? ' low' : ''}` }, icons.battery(), text)
        : h('p', { class: 'empty' }, 'No battery reading: this dag has no fuel gauge, or has not reported one yet.'),
    );
    // A new charge: the chart catches up once dagd may have recorded another reading.
    const percent = device.battery?.percent;
    if (percent !== lastPercent && lastPercent !== undefined && Date.now() - batteryLoadedAt >= BATTERY_RELOAD_MS) {
      const range = RANGES.find((r) => r.days === chosenDays) ?? RANGES[0];
      const until = Date.now();
      void loadBattery(range, until - range.days * units.DAY, until);
    }
    lastPercent = percent;
  }

  async function loadBattery(range: (typeof RANGES)[number], from: number, until: number): Promise<void> {
    const mine = ++batteryGeneration;
    batteryLoadedAt = Date.now();
    batteryHistory.setAttribute('aria-busy', 'true');
    try {
      // until + a minute: a reading received while this request travels is still shown.
      const r = await api.battery(id, { since: from, until: until + units.MINUTE, limit: batteryLimit(range.days) });
      if (mine !== batteryGeneration) return;
      const points = batteryPoints(r.readings);
      const summary = batterySummary(points, range.words, getZone());
      mount(
        batteryHistory,
        points.length ? batteryChart(points, from, until, getZone(), `Battery charge over ${range.words}`) : null,
        h('p', { class: points.length ? 'battery-summary' : 'empty', 'data-battery-summary': '' }, summary),
      );
    } catch (e) {
      if (mine === batteryGeneration) mount(batteryHistory, h('p', { class: 'empty' }, `Could not load the battery readings: ${errorText(e)}`));
    } finally {
      if (mine === batteryGeneration) batteryHistory.removeAttribute('aria-busy');
    }
  }

  async function loadHistory(): Promise<void> {
    const mine = ++generation;
    const range = RANGES.find((r) => r.days === chosenDays) ?? RANGES[0];
    const until = Date.now();
    const from = until - range.days * units.DAY;
    chartBox.setAttribute('aria-busy', 'true');
    void loadBattery(range, from, until);
    try {
      const [events, before, uptime] = await Promise.all([
        allEvents(id, from, until + units.MINUTE),
        lastPowerEventBefore(id, from),
        api.uptime(id, range.days),
      ]);
      if (mine !== generation) return;
      const t = timeline(events, before, from, until);
      const zone = getZone();
      const avail = uptime.availability;
      mount(
        stats,
        h('div', null, h('dt', null, 'Uptime'), h('dd', { 'data-stat': 'uptime' }, avail === null ? '—' : `${avail.toFixed(avail === 100 ? 0 : 2)} %`)),
        h('div', null, h('dt', null, 'Outages'), h('dd', { 'data-stat': 'outages' }, String(uptime.outageCount))),
        h('div', null, h('dt', null, 'Without power'), h('dd', null, duration(uptime.totalOutageMs))),
        h('div', null, h('dt', null, 'Longest'), h('dd', null, uptime.outageCount ? duration(uptime.longestOutageMs) : '—')),
      );
      const label =
        `Power over ${range.words}: ` +
        (t.outages.length === 0 ? 'no outages' : `${t.outages.length} outage${t.outages.length > 1 ? 's' : ''}`) +
        (uptime.ongoing ? ', power off now' : '');
      mount(chartBox, timelineChart(t, zone, label));
      if (t.outages.length === 0) {
        mount(outages, h('p', { class: 'empty' }, `No outages in ${range.words}.`));
      } else {
        mount(
          outages,
          h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              null,
              h('caption', { class: 'sr-only' }, `Outages in ${range.words}, newest first`),
              h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Start'), h('th', { scope: 'col' }, 'End'), h('th', { scope: 'col' }, 'Duration'))),
              h(
                'tbody',
                null,
                t.outages.map((o) =>
                  h(
                    'tr',
                    { 'data-outage': '' },
                    h('td', null, timeExact(o.start)),
                    h('td', null, o.end === null ? h('strong', { class: 'ongoing' }, 'ongoing') : timeExact(o.end)),
                    h('td', null, duration(o.durationMs)),
                  ),
                ),
              ),
            ),
          ),
        );
      }
      note.set('');
    } catch (e) {
      if (mine === generation) note.set(`Could not load the history: ${errorText(e)}`, 'error');
    } finally {
      if (mine === generation) chartBox.removeAttribute('aria-busy');
    }
  }

  function onChange(): void {
    const d = live.get(id);
    if (!d) return;
    device = d;
    renderHead();
    renderBattery();
    const power = `${d.state.power}@${d.state.updated}|${d.connection.status}`;
    if (lastPower && power !== lastPower) {
      // A power or contact change: the history has a new event (debounced).
      if (reload) clearTimeout(reload);
      reload = setTimeout(() => void loadHistory(), 300);
    }
    lastPower = power;
  }

  renderHead();
  if (device) onChange();
  else {
    api
      .device(id)
      .then((d) => upsert(d))
      .catch((e: unknown) => {
        if ((e as { status?: number }).status === 404) mount(head, h('h1', null, 'No such dag'));
        note.set(`Could not load this dag: ${errorText(e)}`, 'error');
      });
  }
  void loadHistory();
  const off = live.subscribe(onChange);
  const tick = setInterval(() => refreshTimes(el), 30_000);
  return {
    el,
    dispose() {
      off();
      clearInterval(tick);
      if (reload) clearTimeout(reload);
      generation++;
      batteryGeneration++;
    },
  };
}
