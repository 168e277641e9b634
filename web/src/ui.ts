// Small pieces shared by the views.

import { h } from './dom';
import { exactTime, parseTime, relativeTime, shortTime } from './time';

let zone: string | undefined;

/** The time zone exact times are shown in (the account's preference, when usable). */
export function setZone(z: string | undefined): void {
  zone = z;
}
export function getZone(): string | undefined {
  return zone;
}

/** <time> with a relative text, the exact time on hover (title) and as datetime. The text
 * is refreshed by refreshTimes(). */
export function timeAgo(iso: string | null): HTMLElement {
  const ms = parseTime(iso);
  if (Number.isNaN(ms)) return h('span', null, 'at an unknown time');
  const el = h('time', { datetime: new Date(ms).toISOString(), title: exactTime(ms, zone), 'data-rel': '' });
  el.textContent = relativeTime(ms, Date.now());
  return el;
}

/** <time> with a short exact time as text and the full one on hover. */
export function timeExact(ms: number): HTMLElement {
  return h('time', { datetime: new Date(ms).toISOString(), title: exactTime(ms, zone) }, shortTime(ms, zone));
}

/** Re-renders every relative time under `root`. */
export function refreshTimes(root: ParentNode): void {
  const now = Date.now();
  root.querySelectorAll<HTMLTimeElement>('time[data-rel]').forEach((t) => {
    const ms = Date.parse(t.dateTime);
    if (!Number.isNaN(ms)) t.textContent = relativeTime(ms, now);
  });
}

/** A polite live region for the outcome of an action. */
export function statusLine(): { el: HTMLElement; set(text: string, kind?: 'ok' | 'error' | ''): void } {
  const el = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  return {
    el,
    set(text, kind = '') {
      el.textContent = text;
      el.className = `status ${kind}`;
    },
  };
}

let ids = 0;
/** A unique id for label/aria wiring. */
export function uid(prefix: string): string {
  return `${prefix}-${++ids}`;
}

/** A labelled form field. */
export function field(label: string, input: HTMLInputElement | HTMLSelectElement, hint?: string): HTMLElement {
  const id = input.id || uid('f');
  input.id = id;
  let hintEl: HTMLElement | null = null;
  if (hint) {
    hintEl = h('span', { class: 'hint', id: `${id}-hint` }, hint);
    input.setAttribute('aria-describedby', hintEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
}

/** Disables a button while `work` runs. */
export async function busy<T>(button: HTMLButtonElement, work: () => Promise<T>): Promise<T> {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
