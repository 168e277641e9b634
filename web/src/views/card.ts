// One dag's card on "Your dags": state icon and colour, title, explanation, when it
// happened, battery, connection badge, and an inline rename.

import { api } from '../api';
import { h, mount } from '../dom';
import * as icons from '../icons';
import { upsert } from '../live';
import { batteryText, connectionText, lookOf, stateIcon } from '../state';
import type { Device } from '../types';
import { errorText, timeAgo, uid } from '../ui';

export function sinceLine(d: Device): HTMLElement | null {
  const key = d.userState.state;
  if (key === 'on' && d.state.updated) return h('p', { class: 'since' }, 'Power came on ', timeAgo(d.state.updated));
  if (key === 'off' && d.state.updated) return h('p', { class: 'since' }, 'Lost power ', timeAgo(d.state.updated));
  if (key === 'was_on' || key === 'was_off') {
    const heard = d.lastSeen ?? d.connection.updated;
    return h(
      'p',
      { class: 'since' },
      key === 'was_off' && d.state.updated ? ['Lost power ', timeAgo(d.state.updated), '; '] : null,
      key === 'was_off' && d.state.updated ? 'last heard from ' : 'Last heard from ',
      timeAgo(heard),
    );
  }
  return null;
}

export class DeviceCard {
  readonly el: HTMLElement;
  private device: Device;
  private editing = false;
  private readonly nameId = uid('name');
  private readonly icon = h('span', { class: 'icon-slot' });
  private readonly nameArea = h('div', { class: 'name-area' });
  private readonly badge = h('span', { class: 'badge' });
  private readonly body = h('div', { class: 'card-body' });
  private readonly error = h('p', { class: 'status error', role: 'alert' });

  constructor(device: Device) {
    this.device = device;
    this.el = h(
      'article',
      { class: 'card', 'data-device-id': device.deviceId, 'aria-labelledby': this.nameId },
      h('div', { class: 'card-head' }, this.icon, this.nameArea, this.badge),
      this.body,
      this.error,
    );
    this.render();
  }

  update(device: Device): void {
    this.device = device;
    this.render();
  }

  private render(): void {
    const d = this.device;
    const look = lookOf(d);
    this.el.className = `card state-${look.key}`;
    this.el.dataset.state = look.key;
    mount(this.icon, stateIcon(look));
    const conn = connectionText(d);
    this.badge.className = `badge ${conn.cls}`;
    this.badge.textContent = conn.text;
    if (!this.editing) this.renderName();
    const battery = batteryText(d);
    mount(
      this.body,
      h('p', { class: 'state-title' }, look.title),
      h('p', { class: 'explanation' }, look.explanation),
      sinceLine(d),
      battery ? h('p', { class: `battery${d.battery?.low ? ' low' : ''}` }, icons.battery(), battery) : null,
      h(
        'a',
        { class: 'more', href: `#/dag/${encodeURIComponent(d.deviceId)}` },
        'History and uptime',
        h('span', { class: 'sr-only' }, ` of ${d.name}`),
      ),
    );
  }

  private renderName(): void {
    const rename = h(
      'button',
      {
        type: 'button',
        class: 'icon-btn rename',
        'aria-label': `Rename ${this.device.name}`,
        title: 'Rename',
        onclick: () => this.edit(),
      },
      icons.pencil(),
    );
    mount(this.nameArea, h('h2', { class: 'name', id: this.nameId }, this.device.name), rename);
  }

  private edit(): void {
    this.editing = true;
    this.error.textContent = '';
    const input = h('input', {
      type: 'text',
      class: 'rename-input',
      value: this.device.name,
      maxlength: 64,
      required: true,
      autocomplete: 'off',
      'aria-label': 'New name',
    });
    const save = h('button', { type: 'submit', class: 'small primary' }, 'Save');
    const cancel = h('button', { type: 'button', class: 'small', onclick: () => this.stopEditing() }, 'Cancel');
    const form = h(
      'form',
      {
        class: 'rename-form',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void this.save(input.value, save);
        },
        onkeydown: (e: Event) => {
          if ((e as KeyboardEvent).key === 'Escape') this.stopEditing();
        },
      },
      h('h2', { class: 'sr-only', id: this.nameId }, this.device.name),
      input,
      save,
      cancel,
    );
    mount(this.nameArea, form);
    input.focus();
    input.select();
  }

  private stopEditing(): void {
    this.editing = false;
    this.renderName();
    this.nameArea.querySelector<HTMLButtonElement>('button.rename')?.focus();
  }

  private async save(value: string, button: HTMLButtonElement): Promise<void> {
    const name = value.trim();
    if (!name) {
      this.error.textContent = 'A name cannot be empty.';
      return;
    }
    if ([...name].length > 64) {
      this.error.textContent = 'A name has at most 64 characters.';
      return;
    }
    button.disabled = true;
    try {
      const d = await api.rename(this.device.deviceId, name);
      this.error.textContent = '';
      this.device = d;
      this.stopEditing();
      upsert(d);
    } catch (e) {
      this.error.textContent = `Could not rename: ${errorText(e)}`;
      button.disabled = false;
    }
  }
}
