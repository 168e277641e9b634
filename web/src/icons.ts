// Hand-drawn 24×24 SVG icons (stroke icons, currentColor), bundled: no icon font, no
// request to anywhere.

import { s } from './dom';

function icon(paths: string[], label?: string, extra?: SVGElement[]): SVGSVGElement {
  const svg = s('svg', {
    viewBox: '0 0 24 24',
    width: 24,
    height: 24,
    fill: 'none',
    stroke: 'currentColor',
    'stroke-width': 2,
    'stroke-linecap': 'round',
    'stroke-linejoin': 'round',
    class: 'icon',
    ...(label ? { role: 'img', 'aria-label': label } : { 'aria-hidden': 'true', focusable: 'false' }),
  });
  if (label) svg.appendChild(s('title', null, label));
  for (const d of paths) svg.appendChild(s('path', { d }));
  for (const e of extra ?? []) svg.appendChild(e);
  return svg;
}

/** A plug: the power is on. */
export const plug = (label?: string) =>
  icon(['M9 2v6', 'M15 2v6', 'M6 8h12v3a6 6 0 0 1-12 0z', 'M12 17v5'], label);
/** A struck-out bolt: the power is off. */
export const bolt = (label?: string) =>
  icon(['M13 2 4 14h7l-1 8 9-12h-7z'], label);
export const boltOff = (label?: string) =>
  icon(['M13 2 9.5 6.7', 'M7.5 9.3 4 14h7l-1 8 3.5-4.7', 'M15.5 15.3 19 10h-4.5', 'M3 3l18 18'], label);
/** No signal: we lost contact. */
export const noSignal = (label?: string) =>
  icon(['M2 8.8a15 15 0 0 1 4-2.6', 'M10 5.2a15 15 0 0 1 12 3.6', 'M5 12.6a10 10 0 0 1 5.2-2.6', 'M8.5 16.4a5 5 0 0 1 5.5-.9', 'M12 20h.01', 'M3 3l18 18'], label);
export const question = (label?: string) =>
  icon(['M9.1 9a3 3 0 0 1 5.8 1c0 2-3 3-3 3', 'M12 17h.01'], label, [
    s('circle', { cx: 12, cy: 12, r: 10 }),
  ]);
export const battery = (label?: string) =>
  icon(['M22 11v2', 'M6 10v4', 'M10 10v4'], label, [
    s('rect', { x: 2, y: 7, width: 18, height: 10, rx: 2 }),
  ]);
export const refresh = (label?: string) =>
  icon(['M21 12a9 9 0 0 1-15.5 6.3L3 16', 'M3 12a9 9 0 0 1 15.5-6.3L21 8', 'M21 3v5h-5', 'M3 21v-5h5'], label);
export const pencil = (label?: string) =>
  icon(['M17 3a2.8 2.8 0 0 1 4 4L7.5 20.5 2 22l1.5-5.5z', 'M15 5l4 4'], label);
export const chevronLeft = (label?: string) => icon(['M15 18l-6-6 6-6'], label);
export const logo = () =>
  icon(['M13 2 4 14h7l-1 8 9-12h-7z'], undefined, []);
