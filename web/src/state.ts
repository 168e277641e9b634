// How a device's state looks: the four user states of the original system (On, Off, Was
// On, Was Off; docs/protocol.md), their icon, colour class, title and explanation.

import * as icons from './icons';
import type { Device, UserStateName } from './types';
import { minutesLeft } from './time';

export interface Look {
  key: UserStateName | 'unknown';
  title: string;
  explanation: string;
  icon: (label?: string) => SVGSVGElement;
  /** Lost contact: a no-signal mark over the power icon, as the original had. */
  noSignal: boolean;
}

const LOOKS: Record<UserStateName | 'unknown', Omit<Look, 'key' | 'noSignal'>> = {
  on: { title: 'On', explanation: 'Your dag is in contact and the power is on.', icon: icons.plug },
  off: {
    title: 'Off',
    explanation: 'Your dag is in contact and the power is off; it is running on its battery.',
    icon: icons.boltOff,
  },
  was_on: {
    title: 'Was On',
    explanation: 'We have lost contact with your dag; the power was on when we last heard from it.',
    icon: icons.plug,
  },
  was_off: {
    title: 'Was Off',
    explanation:
      'The power went off and then we lost contact with your dag; its battery has probably run out.',
    icon: icons.boltOff,
  },
  unknown: {
    title: 'Waiting',
    explanation: 'Your dag has not reported yet. Plug it in and give it a minute.',
    icon: icons.question,
  },
};

/** The look of a device; dagd's title and explanation win over ours. */
export function lookOf(d: Device): Look {
  const key = d.userState.state ?? 'unknown';
  const base = LOOKS[key] ?? LOOKS.unknown;
  return {
    key,
    title: d.userState.title || base.title,
    explanation: d.userState.explanation || base.explanation,
    icon: base.icon,
    noSignal: key === 'was_on' || key === 'was_off',
  };
}

/** "87 %", "87 % · about 5 h 12 min left"; null without a battery reading. */
export function batteryText(d: Device): string | null {
  const b = d.battery;
  if (!b || typeof b.percent !== 'number') return null;
  let text = `Battery ${Math.round(b.percent)} %`;
  if (b.low) text += ' (low)';
  if (d.userState.state === 'off') {
    if (typeof b.minutesLeft === 'number') text += ` · ${minutesLeft(b.minutesLeft)}`;
    else text += ' · estimating time left';
  }
  return text;
}

export function connectionText(d: Device): { text: string; cls: string } {
  switch (d.connection.status) {
    case 'connected':
      return { text: 'Connected', cls: 'ok' };
    case 'disconnected':
      return { text: 'No contact', cls: 'bad' };
    default:
      return { text: 'Never seen', cls: 'muted' };
  }
}

/** The state's icon in its coloured disc, with the no-signal mark when contact is lost. */
export function stateIcon(look: Look, big = false): HTMLElement {
  const el = document.createElement('span');
  el.className = big ? 'state-icon big' : 'state-icon';
  el.appendChild(look.icon(look.title));
  if (look.noSignal) {
    const mark = document.createElement('span');
    mark.className = 'no-signal';
    mark.appendChild(icons.noSignal());
    el.appendChild(mark);
  }
  return el;
}
