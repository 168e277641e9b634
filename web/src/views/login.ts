// The login page. `notice` explains why we are here (an expired session, a logout).

import { api } from '../api';
import { h } from '../dom';
import * as icons from '../icons';
import type { AuthResponse } from '../types';
import { errorText, field } from '../ui';

export function loginView(notice: string | null, done: (auth: AuthResponse, username: string) => void): HTMLElement {
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'status error', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'primary wide' }, 'Log in');
  const form = h(
    'form',
    {
      class: 'login-form',
      onsubmit: (e: Event) => {
        e.preventDefault();
        submit.disabled = true;
        error.textContent = '';
        const username = user.value.trim();
        api
          .login(username, pass.value)
          .then((auth) => done(auth, username))
          .catch((err: unknown) => {
            const status = (err as { status?: number }).status;
            error.textContent = status === 403 ? 'Wrong username or password.' : errorText(err);
            submit.disabled = false;
            pass.select();
          });
      },
    },
    field('Username', user),
    field('Password', pass),
    submit,
    error,
  );
  const el = h(
    'main',
    { class: 'login', id: 'main' },
    h(
      'div',
      { class: 'login-card' },
      h('div', { class: 'brand big' }, icons.logo(), h('span', null, 'detectordag')),
      h('h1', null, 'Log in to see your dags'),
      notice ? h('p', { class: 'notice', role: 'alert' }, notice) : null,
      form,
    ),
  );
  queueMicrotask(() => user.focus());
  return el;
}
