// The dashboard: login, "Your dags", a dag's page and the settings, on hash routes
// (#/, #/dag/<id>, #/settings) so that any device id works in a link and dagd only ever
// serves index.html.

import './style.css';
import { api, onUnauthorized, setToken } from './api';
import { h, mount } from './dom';
import * as icons from './icons';
import { connect, disconnect, live } from './live';
import { clearSession, isExpired, loadSession, saveSession, type Session } from './session';
import { usableTimeZone } from './time';
import { setZone } from './ui';
import { dagsView } from './views/dags';
import { deviceView } from './views/device';
import { loginView } from './views/login';
import { settingsView } from './views/settings';

const EXPIRED = 'Your session has expired. Please log in again.';

const root = document.getElementById('app') as HTMLElement;
let session: Session | null = loadSession();
let notice: string | null = null;
let view: { dispose(): void } | null = null;
let expiry: ReturnType<typeof setTimeout> | null = null;

function endSession(message: string | null): void {
  if (expiry) clearTimeout(expiry);
  expiry = null;
  session = null;
  setToken('');
  clearSession();
  disconnect();
  notice = message;
  if (location.hash !== '#/login') location.hash = '#/login';
  else render();
}

onUnauthorized(() => {
  if (session) endSession(EXPIRED);
});

function startSession(s: Session): void {
  session = s;
  setToken(s.token);
  notice = null;
  connect(s.accountId, s.token);
  if (expiry) clearTimeout(expiry);
  // setTimeout's limit is 2^31 ms (24 days); tokens live hours.
  expiry = setTimeout(() => endSession(EXPIRED), Math.min(s.expiresAt - Date.now(), 2 ** 31 - 1));
  api
    .preferences(s.accountId)
    .then((p) => {
      setZone(usableTimeZone(p.timeZone));
    })
    .catch(() => {});
}

function streamBadge(): HTMLElement {
  const el = h('span', { class: 'stream', role: 'status', 'aria-live': 'polite' });
  const show = () => {
    const st = live.status();
    el.dataset.status = st;
    el.textContent = st === 'live' ? 'Live' : st === 'connecting' ? 'Connecting…' : st === 'reconnecting' ? 'Reconnecting…' : 'Offline';
    el.title =
      st === 'live'
        ? 'Changes appear as they happen'
        : 'The live connection dropped; retrying. Use Refresh to reload by hand.';
  };
  show();
  live.onStatus(show);
  return el;
}

function shell(content: HTMLElement, current: 'dags' | 'settings' | 'device'): HTMLElement {
  const link = (href: string, label: string, active: boolean) =>
    h('a', { href, ...(active ? { 'aria-current': 'page' } : {}) }, label);
  const skip = h('a', { class: 'skip', href: '#main' }, 'Skip to content');
  skip.addEventListener('click', (e) => {
    e.preventDefault();
    document.getElementById('main')?.focus();
  });
  return h(
    'div',
    { class: 'shell' },
    skip,
    h(
      'header',
      { class: 'topbar' },
      h('a', { class: 'brand', href: '#/' }, icons.logo(), h('span', null, 'detectordag')),
      h(
        'nav',
        { 'aria-label': 'Main' },
        link('#/', 'Your dags', current !== 'settings'),
        link('#/settings', 'Settings', current === 'settings'),
      ),
      h(
        'div',
        { class: 'who' },
        streamBadge(),
        h('button', { type: 'button', class: 'small', onclick: () => endSession('You have logged out.') }, 'Log out'),
      ),
    ),
    h('main', { id: 'main', tabindex: '-1' }, content),
  );
}

function render(): void {
  view?.dispose();
  view = null;
  const hash = location.hash || '#/';
  if (session && isExpired(session, Date.now())) endSession(EXPIRED);
  if (!session) {
    document.title = 'Log in · detectordag';
    mount(
      root,
      loginView(notice, (auth, username) => {
        startSession(saveSession(auth, username));
        // Back to where the session ended (or "Your dags"); same hash: no hashchange.
        if (!location.hash || location.hash === '#/login') location.hash = '#/';
        else render();
      }),
    );
    return;
  }
  if (hash === '#/login') {
    location.replace('#/');
    return;
  }
  const device = /^#\/dag\/(.+)$/.exec(hash);
  if (device) {
    const v = deviceView(decodeURIComponent(device[1]));
    view = v;
    mount(root, shell(v.el, 'device'));
  } else if (hash === '#/settings') {
    document.title = 'Settings · detectordag';
    const v = settingsView(session);
    view = v;
    mount(root, shell(v.el, 'settings'));
  } else {
    document.title = 'Your dags · detectordag';
    const v = dagsView();
    view = v;
    mount(root, shell(v.el, 'dags'));
  }
  window.scrollTo(0, 0);
}

if (session) {
  if (isExpired(session, Date.now())) endSession(EXPIRED);
  else startSession(session);
}
window.addEventListener('hashchange', render);
render();
