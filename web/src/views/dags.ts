// "Your dags": a card per device, live from the event stream, with a manual refresh.

import { h, mount } from '../dom';
import * as icons from '../icons';
import { live, refresh } from '../live';
import { busy, errorText, refreshTimes, statusLine } from '../ui';
import { DeviceCard } from './card';

export function dagsView(): { el: HTMLElement; dispose(): void } {
  const cards = new Map<string, DeviceCard>();
  const grid = h('div', { class: 'grid', 'aria-live': 'off' });
  const note = statusLine();
  const button = h(
    'button',
    { type: 'button', class: 'refresh', onclick: () => void doRefresh() },
    icons.refresh(),
    'Refresh',
  );
  const el = h(
    'div',
    { class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Your dags'), button),
    note.el,
    grid,
  );

  async function doRefresh(): Promise<void> {
    try {
      await busy(button, refresh);
      note.set('Updated just now.', 'ok');
    } catch (e) {
      note.set(`Could not refresh: ${errorText(e)}`, 'error');
    }
  }

  function render(): void {
    const list = live.list();
    if (!live.loaded()) {
      mount(grid, h('p', { class: 'empty' }, 'Loading your dags…'));
      return;
    }
    if (list.length === 0) {
      cards.clear();
      mount(
        grid,
        h('p', { class: 'empty' }, 'No dags yet. Your administrator adds them with ', h('code', null, 'dagctl device add'), '.'),
      );
      return;
    }
    const seen = new Set<string>();
    const order: HTMLElement[] = [];
    for (const d of list) {
      seen.add(d.deviceId);
      let card = cards.get(d.deviceId);
      if (card) card.update(d);
      else {
        card = new DeviceCard(d);
        cards.set(d.deviceId, card);
      }
      order.push(card.el);
    }
    for (const id of [...cards.keys()]) if (!seen.has(id)) cards.delete(id);
    // Keep nodes in place when the order did not change (an open rename keeps its focus).
    const current = [...grid.children];
    if (current.length !== order.length || current.some((c, i) => c !== order[i])) mount(grid, order);
  }

  render();
  // The stream's snapshot fills the list; ask by hand only when it is slow to come.
  const fallback = setTimeout(() => {
    if (!live.loaded()) refresh().catch((e: unknown) => note.set(`Could not load your dags: ${errorText(e)}`, 'error'));
  }, 3000);
  const off = live.subscribe(render);
  const tick = setInterval(() => refreshTimes(grid), 30_000);
  return {
    el,
    dispose() {
      off();
      clearInterval(tick);
      clearTimeout(fallback);
    },
  };
}
