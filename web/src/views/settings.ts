// Settings: notification e-mails (verification status, resend), webhooks and ntfy topics
// (send test, last error), preferences and the password.

import { api } from '../api';
import { h, mount } from '../dom';
import type { Session } from '../session';
import type { Preferences, Target, TargetKind } from '../types';
import { busy, errorText, field, setZone, statusLine, timeAgo, uid } from '../ui';
import { usableTimeZone } from '../time';

const KIND_LABEL: Record<TargetKind, string> = { email: 'E-mail', webhook: 'Webhook', ntfy: 'ntfy' };

export function settingsView(session: Session): { el: HTMLElement; dispose(): void } {
  const account = session.accountId;
  const emailList = h('ul', { class: 'targets', 'aria-label': 'Notification e-mails' });
  const hookList = h('ul', { class: 'targets', 'aria-label': 'Webhooks and ntfy topics' });
  const emailNote = statusLine();
  const hookNote = statusLine();
  const prefsBox = h('div');
  const loadNote = statusLine();
  let disposed = false;

  // ---- notification targets -----------------------------------------------------------

  function targetItem(t: Target): HTMLElement {
    const result = statusLine();
    const actions = h('div', { class: 'actions' });
    const remove = h('button', { type: 'button', class: 'small danger' }, 'Remove');
    remove.setAttribute('aria-label', `Remove ${t.address}`);
    remove.addEventListener('click', () => {
      void busy(remove, async () => {
        try {
          await api.removeTarget(account, t.targetId);
          await loadTargets();
          (t.kind === 'email' ? emailNote : hookNote).set(`Removed ${t.address}.`, 'ok');
        } catch (e) {
          result.set(`Could not remove: ${errorText(e)}`, 'error');
        }
      });
    });
    const details: (HTMLElement | null)[] = [];
    if (t.kind === 'email') {
      details.push(
        t.verified
          ? h('span', { class: 'badge ok' }, 'Verified')
          : h('span', { class: 'badge warn' }, 'Verification pending'),
      );
      if (!t.verified) {
        const resend = h('button', { type: 'button', class: 'small' }, 'Resend verification');
        resend.setAttribute('aria-label', `Resend verification to ${t.address}`);
        resend.addEventListener('click', () => {
          void busy(resend, async () => {
            try {
              const r = await api.resendVerification(account, t.targetId);
              result.set(
                r.requested ? 'Verification mail sent. Follow its link.' : 'A mail went out less than a minute ago; try again shortly.',
                r.requested ? 'ok' : '',
              );
            } catch (e) {
              result.set(`Could not resend: ${errorText(e)}`, 'error');
            }
          });
        });
        actions.appendChild(resend);
      }
      if (t.verificationSentAt && !t.verified)
        details.push(h('span', { class: 'muted' }, 'mail sent ', timeAgo(t.verificationSentAt)));
    } else {
      details.push(h('span', { class: 'badge' }, KIND_LABEL[t.kind]));
      const test = h('button', { type: 'button', class: 'small' }, 'Send test');
      test.setAttribute('aria-label', `Send test to ${t.address}`);
      test.addEventListener('click', () => {
        void busy(test, async () => {
          result.set('Sending…');
          try {
            const r = await api.testTarget(account, t.targetId);
            if (r.delivered) result.set('Test delivered.', 'ok');
            else result.set(`Test failed: ${r.error ?? 'unknown error'}`, 'error');
          } catch (e) {
            result.set(`Could not send: ${errorText(e)}`, 'error');
          }
        });
      });
      actions.appendChild(test);
      const hh = t.health;
      if (hh.lastError) {
        details.push(
          h('span', { class: 'health error' }, 'Last error: ', h('span', { class: 'last-error' }, hh.lastError), hh.lastErrorAt ? [' (', timeAgo(hh.lastErrorAt), ')'] : null),
        );
      }
      if (hh.lastSuccessAt) details.push(h('span', { class: 'health' }, 'Last delivered ', timeAgo(hh.lastSuccessAt)));
      else if (!hh.lastError) details.push(h('span', { class: 'muted' }, 'No deliveries yet'));
      if (hh.failureCount > 0)
        details.push(h('span', { class: 'muted' }, `${hh.failureCount} failure${hh.failureCount > 1 ? 's' : ''} since the last success`));
    }
    actions.appendChild(remove);
    return h(
      'li',
      { class: 'target', 'data-target-kind': t.kind },
      h('div', { class: 'target-main' }, h('span', { class: 'address' }, t.address), h('div', { class: 'details' }, details)),
      actions,
      result.el,
    );
  }

  async function loadTargets(): Promise<void> {
    const list = await api.targets(account);
    if (disposed) return;
    const emails = list.filter((t) => t.kind === 'email');
    const hooks = list.filter((t) => t.kind !== 'email');
    mount(emailList, emails.length ? emails.map(targetItem) : h('li', { class: 'empty' }, 'No e-mail addresses yet.'));
    mount(hookList, hooks.length ? hooks.map(targetItem) : h('li', { class: 'empty' }, 'No webhooks or ntfy topics yet.'));
  }

  const emailInput = h('input', { type: 'email', name: 'email', required: true, autocomplete: 'email', placeholder: 'you@example.com' });
  const emailAdd = h('button', { type: 'submit', class: 'primary' }, 'Add e-mail');
  const emailForm = h(
    'form',
    {
      class: 'inline-form',
      onsubmit: (e: Event) => {
        e.preventDefault();
        void busy(emailAdd, async () => {
          try {
            const address = emailInput.value.trim();
            await api.addTarget(account, { kind: 'email', address });
            emailInput.value = '';
            await loadTargets();
            emailNote.set(`Added ${address}. We sent it a verification mail.`, 'ok');
          } catch (e) {
            emailNote.set(
              e instanceof Error && 'status' in e && (e as { status: number }).status === 409
                ? 'That address is on the list already.'
                : `Could not add: ${errorText(e)}`,
              'error',
            );
          }
        });
      },
    },
    field('E-mail address', emailInput),
    emailAdd,
  );

  const kindSelect = h(
    'select',
    { name: 'kind' },
    h('option', { value: 'webhook' }, 'Webhook (HTTP POST)'),
    h('option', { value: 'ntfy' }, 'ntfy topic'),
  );
  const urlInput = h('input', { type: 'url', name: 'url', required: true, placeholder: 'https://ntfy.sh/my-house', autocomplete: 'off' });
  const secretInput = h('input', { type: 'password', name: 'secret', autocomplete: 'new-password' });
  const hookAdd = h('button', { type: 'submit', class: 'primary' }, 'Add');
  const hookForm = h(
    'form',
    {
      class: 'inline-form',
      onsubmit: (e: Event) => {
        e.preventDefault();
        void busy(hookAdd, async () => {
          try {
            const address = urlInput.value.trim();
            const secret = secretInput.value;
            await api.addTarget(account, { kind: kindSelect.value as TargetKind, address, ...(secret ? { secret } : {}) });
            urlInput.value = '';
            secretInput.value = '';
            await loadTargets();
            hookNote.set(`Added ${address}.`, 'ok');
          } catch (e) {
            hookNote.set(`Could not add: ${errorText(e)}`, 'error');
          }
        });
      },
    },
    field('Kind', kindSelect),
    field('URL', urlInput),
    field('Secret (optional)', secretInput, 'HMAC key of a webhook, or the access token of an ntfy topic'),
    hookAdd,
  );

  // ---- preferences ----------------------------------------------------------------------

  function prefsForm(p: Preferences): HTMLElement {
    const num = (value: number, min: number, max: number) =>
      h('input', { type: 'number', value, min, max, step: 1, required: true, inputmode: 'numeric' });
    const powerGrace = num(p.powerOffGraceSeconds, 0, 604800);
    const contactGrace = num(p.disconnectGraceSeconds, 0, 604800);
    const lowBattery = num(p.lowBatteryPercent, 0, 100);
    const zones = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone') ?? [];
    const listId = uid('zones');
    const zone = h('input', { type: 'text', value: p.timeZone, list: listId, required: true, autocomplete: 'off', spellcheck: 'false' });
    const zoneList = h('datalist', { id: listId }, ['UTC', ...zones].map((z) => h('option', { value: z })));
    const checks: [keyof Preferences['notify'], string][] = [
      ['powerLost', 'Power lost'],
      ['powerBack', 'Power back'],
      ['contactLost', 'Contact lost with a dag'],
      ['dagBack', 'A dag back in contact'],
      ['batteryLow', 'Battery low'],
    ];
    const boxes = checks.map(([key, label]) => {
      const id = uid('n');
      const box = h('input', { type: 'checkbox', id, name: key, checked: p.notify[key] });
      return { key, box, el: h('div', { class: 'check' }, box, h('label', { for: id }, label)) };
    });
    const note = statusLine();
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save preferences');
    return h(
      'form',
      {
        class: 'prefs',
        onsubmit: (e: Event) => {
          e.preventDefault();
          void busy(save, async () => {
            try {
              const notify = Object.fromEntries(boxes.map((b) => [b.key, b.box.checked])) as unknown as Preferences['notify'];
              const saved = await api.savePreferences(account, {
                powerOffGraceSeconds: Number(powerGrace.value),
                disconnectGraceSeconds: Number(contactGrace.value),
                lowBatteryPercent: Number(lowBattery.value),
                timeZone: zone.value.trim(),
                notify,
              });
              setZone(usableTimeZone(saved.timeZone));
              note.set('Preferences saved.', 'ok');
            } catch (e) {
              note.set(`Could not save: ${errorText(e)}`, 'error');
            }
          });
        },
      },
      h(
        'div',
        { class: 'grid-form' },
        field('Power-off grace period (seconds)', powerGrace, 'Tell me only once the power stayed off this long'),
        field('Lost-contact grace period (seconds)', contactGrace, 'How long a dag may be silent before "lost contact"'),
        field('Low battery at (%)', lowBattery, 'Warn at or below this charge'),
        field('Time zone', zone, 'For the times in e-mails and on this dashboard'),
      ),
      zoneList,
      h('fieldset', null, h('legend', null, 'Notify me when'), boxes.map((b) => b.el)),
      save,
      note.el,
    );
  }

  // ---- password -------------------------------------------------------------------------

  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const pwNote = statusLine();
  const pwSave = h('button', { type: 'submit', class: 'primary' }, 'Change password');
  const pwForm = h(
    'form',
    {
      class: 'password',
      onsubmit: (e: Event) => {
        e.preventDefault();
        if (next.value !== again.value) {
          pwNote.set('The new passwords differ.', 'error');
          return;
        }
        if (new TextEncoder().encode(next.value).length < 8) {
          pwNote.set('A password has at least 8 characters.', 'error');
          return;
        }
        void busy(pwSave, async () => {
          try {
            await api.changePassword(account, current.value, next.value);
            current.value = next.value = again.value = '';
            pwNote.set('Password changed.', 'ok');
          } catch (e) {
            const status = (e as { status?: number }).status;
            pwNote.set(status === 403 ? 'The current password is wrong.' : `Could not change it: ${errorText(e)}`, 'error');
          }
        });
      },
    },
    h(
      'div',
      { class: 'grid-form' },
      field('Current password', current),
      field('New password', next, 'At least 8 characters'),
      field('New password again', again),
    ),
    pwSave,
    pwNote.el,
  );

  const el = h(
    'div',
    { class: 'page settings-page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Settings')),
    loadNote.el,
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'emails-h' },
      h('h2', { id: 'emails-h' }, 'Notification e-mails'),
      h('p', { class: 'muted' }, 'Alerts go to verified addresses only. A new address gets a mail with a link to verify it.'),
      emailList,
      emailForm,
      emailNote.el,
    ),
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'hooks-h' },
      h('h2', { id: 'hooks-h' }, 'Webhooks and ntfy'),
      hookList,
      hookForm,
      hookNote.el,
    ),
    h('section', { class: 'panel', 'aria-labelledby': 'prefs-h' }, h('h2', { id: 'prefs-h' }, 'Preferences'), prefsBox),
    h('section', { class: 'panel', 'aria-labelledby': 'pw-h' }, h('h2', { id: 'pw-h' }, 'Password'), pwForm),
  );

  mount(prefsBox, h('p', { class: 'empty' }, 'Loading…'));
  loadTargets().catch((e: unknown) => loadNote.set(`Could not load the notification targets: ${errorText(e)}`, 'error'));
  api
    .preferences(account)
    .then((p) => {
      if (!disposed) mount(prefsBox, prefsForm(p));
    })
    .catch((e: unknown) => loadNote.set(`Could not load the preferences: ${errorText(e)}`, 'error'));
  return {
    el,
    dispose() {
      disposed = true;
    },
  };
}
