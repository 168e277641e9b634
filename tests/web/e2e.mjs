// The dashboard as a user uses it, in Debian's Chromium driven by playwright-core, against
// the real dagd + Mosquitto + dag-edge that tests/web/web_e2e_test.cpp started. Every wait
// is an awaited condition with a timeout; the first failed expectation ends the run with
// exit code 1. Screenshots of every page, desktop and phone, go to DAG_E2E_SCREENSHOTS.
//
// Environment (set by web_e2e_test):
//   DAG_E2E_URL            dagd's base URL, serving the built dashboard
//   DAG_E2E_USER, DAG_E2E_PASSWORD
//   DAG_E2E_DEVICE         the id of the dag on a simulated line; DAG_E2E_DEVICE_NAME its name
//   DAG_E2E_XSS_DEVICE     the id of a dag named `<img src=x onerror=alert(1)>`
//   DAG_E2E_POWER_OFF, DAG_E2E_POWER_ON   shell commands that cut and restore its power
//   DAG_E2E_SILENT_DEVICE  a dag on battery; DAG_E2E_CONTACT_LOSS a command that kills its agent
//   DAG_E2E_SCREENSHOTS    where the PNGs go (docs/screenshots)
//   DAG_E2E_CHROMIUM       the browser (default /usr/bin/chromium)
import { exec } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env('DAG_E2E_URL');
const USER = env('DAG_E2E_USER');
const PASSWORD = env('DAG_E2E_PASSWORD');
const DEVICE = env('DAG_E2E_DEVICE');
const DEVICE_NAME = env('DAG_E2E_DEVICE_NAME');
const XSS_DEVICE = env('DAG_E2E_XSS_DEVICE');
const POWER_OFF = env('DAG_E2E_POWER_OFF');
const POWER_ON = env('DAG_E2E_POWER_ON');
const SILENT_DEVICE = env('DAG_E2E_SILENT_DEVICE');
const CONTACT_LOSS = env('DAG_E2E_CONTACT_LOSS');
const SHOTS = env('DAG_E2E_SCREENSHOTS');
const CHROMIUM = env('DAG_E2E_CHROMIUM', '/usr/bin/chromium');
const XSS_NAME = '<img src=x onerror=alert(1)>';
const NEW_NAME = 'Cabin by the lake';
const LIVE_BOUND_MS = 2000; // issue 8: a power change shows within 2 s without reload
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

class Failure extends Error {}
function expect(condition, message) {
  if (!condition) throw new Failure(message);
}

let passed = 0;
const started = Date.now();
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    console.log(`FAIL ${name}: ${e instanceof Error ? e.message : e}`);
    throw e;
  }
  passed++;
  console.log(`ok   ${name} (${Date.now() - t0} ms)`);
}

// Everything the pages did that must not happen.
const dialogs = [];
const pageErrors = [];
const foreign = [];
const cspViolations = [];
const origins = [BASE];
function watch(page) {
  page.on('console', (m) => {
    if (m.text().includes('Content Security Policy')) cspViolations.push(m.text());
  });
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`);
    void d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('request', (r) => {
    const url = r.url();
    if (!origins.some((o) => url.startsWith(o)) && !url.startsWith('data:') && !url.startsWith('blob:'))
      foreign.push(url);
  });
  return page;
}

const card = (page, id) => page.locator(`article.card[data-device-id="${id}"]`);

async function waitForState(page, id, state, timeout) {
  await page.waitForFunction(
    ([id, state]) => document.querySelector(`article.card[data-device-id="${id}"]`)?.dataset.state === state,
    [id, state],
    { timeout, polling: 'raf' },
  );
}

async function shot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, animations: 'disabled' });
}

// axe-core's WCAG 2.1 A and AA rules (labels, names, contrast, ...) on the page as it is.
async function accessible(page, what) {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] });
    return r.violations.map((v) => `${v.id} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  });
  expect(violations.length === 0, `${what}: accessibility violations: ${violations.join('; ')}`);
}

async function noHorizontalScroll(page, what) {
  const [scroll, width] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  expect(scroll <= width, `${what}: the page is ${scroll} px wide in a ${width} px window`);
}

async function login(page, { user = USER, password = PASSWORD } = {}) {
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
}

// A TCP relay to dagd that the test can cut: every open connection (the event stream
// too) dies at once, and new ones are refused until resume(). A real network drop, which
// the browser's offline emulation does not do to an open stream.
async function relay(target) {
  const { hostname, port } = new URL(target);
  const open = new Set();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) return void client.destroy();
    const upstream = net.connect(Number(port), hostname);
    open.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    for (const s of [client, upstream]) s.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      refusing = true;
      for (const s of open) s.destroy();
      open.clear();
    },
    resume() {
      refusing = false;
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// Runs a shell command to its end (without blocking the relay above).
const execAsync = promisify(exec);
async function run(command) {
  await execAsync(command, { timeout: 10_000 });
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-background-networking'],
});
let failed = false;
let page;
try {
  // ---- desktop ----------------------------------------------------------------------------
  // Without dagd's CSP here, so that axe-core can be injected, and so that the HTML-named
  // dag tests our own escaping rather than the CSP; the phone run keeps the CSP.
  const desktop = await browser.newContext({
    viewport: { width: 1280, height: 800 },
    timezoneId: 'UTC',
    bypassCSP: true,
  });
  page = watch(await desktop.newPage());

  await step('the login page comes first, and a wrong password is refused', async () => {
    await page.goto(BASE, { waitUntil: 'domcontentloaded' });
    await page.getByRole('heading', { name: 'Log in to see your dags' }).waitFor();
    await shot(page, 'login-desktop');
    await accessible(page, 'login');
    await login(page, { password: 'not the password' });
    await page.getByRole('alert').filter({ hasText: 'Wrong username or password.' }).waitFor();
  });

  await step('the favicon, the manifest, immutable assets and the SPA fallback are served', async () => {
    const manifest = await page.request.get(`${BASE}/manifest.webmanifest`);
    expect(manifest.ok(), `manifest: HTTP ${manifest.status()}`);
    expect((await manifest.json()).name === 'detectordag', 'manifest: no name');
    const icon = await page.request.get(`${BASE}/favicon.svg`);
    expect(icon.ok() && icon.headers()['content-type'].startsWith('image/svg+xml'), 'favicon.svg');
    const script = await page.locator('script[type=module]').getAttribute('src');
    expect(script?.startsWith('/assets/'), `entry script at ${script}`);
    const asset = await page.request.get(`${BASE}${script}`);
    expect(asset.headers()['cache-control']?.includes('immutable'), 'assets are not immutable');
    const route = await page.request.get(`${BASE}/some/client/route`);
    expect(route.ok() && route.headers()['content-type'].startsWith('text/html'), 'the SPA fallback');
  });

  await step('logging in (by keyboard) shows a card per dag, live', async () => {
    // The username field has the focus; Tab to the password, Enter submits.
    await page.getByLabel('Username').fill('');
    await page.getByLabel('Username').focus();
    await page.keyboard.type(USER);
    await page.keyboard.press('Tab');
    expect(await page.getByLabel('Password').evaluate((e) => e === document.activeElement), 'Tab reaches the password');
    await page.getByLabel('Password').fill('');
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: 'Your dags', exact: true }).waitFor();
    await waitForState(page, DEVICE, 'on', 10_000);
    expect((await page.locator('article.card').count()) === 3, 'three cards');
    const c = card(page, DEVICE);
    expect((await c.locator('.state-title').textContent()) === 'On', 'the title says On');
    expect((await c.locator('.badge').textContent()) === 'Connected', 'the badge says Connected');
    expect(/Battery 100 %/.test(await c.locator('.battery').textContent()), 'battery %');
    await page.locator('.stream[data-status="live"]').waitFor({ timeout: 10_000 });
  });

  await step('a dag named like HTML is shown as text and runs nothing', async () => {
    const c = card(page, XSS_DEVICE);
    expect((await c.locator('h2.name').textContent()) === XSS_NAME, 'the name is shown as written');
    expect((await page.locator('article.card img').count()) === 0, 'an <img> was created');
    expect((await c.getAttribute('data-state')) === 'unknown', 'a dag that never reported is unknown');
  });

  await step(`cutting the power shows Off within ${LIVE_BOUND_MS} ms, without reload`, async () => {
    await page.evaluate(() => {
      window.__e2eSamePage = true;
    });
    const t0 = Date.now(); // the bound includes the `dag-edge sim` command itself
    await run(POWER_OFF);
    await waitForState(page, DEVICE, 'off', Math.max(1, LIVE_BOUND_MS - (Date.now() - t0)));
    console.log(`     Off after ${Date.now() - t0} ms`);
    const c = card(page, DEVICE);
    expect((await c.locator('.state-title').textContent()) === 'Off', 'the title says Off');
    expect(/^Lost power just now/.test(await c.locator('.since').textContent()), 'lost power just now');
    expect(
      (await c.locator('.since time').getAttribute('title'))?.includes('UTC'),
      'the exact time on hover',
    );
    expect(/on its battery/.test(await c.locator('.explanation').textContent()), 'the explanation');
    expect(await page.evaluate(() => window.__e2eSamePage === true), 'the page was reloaded');
  });

  await step(`restoring the power shows On within ${LIVE_BOUND_MS} ms`, async () => {
    const t0 = Date.now(); // the bound includes the `dag-edge sim` command itself
    await run(POWER_ON);
    await waitForState(page, DEVICE, 'on', Math.max(1, LIVE_BOUND_MS - (Date.now() - t0)));
    console.log(`     On after ${Date.now() - t0} ms`);
    expect(await page.evaluate(() => window.__e2eSamePage === true), 'the page was reloaded');
  });

  await step('the manual refresh reloads the list', async () => {
    const answered = page.waitForResponse((r) => r.url().endsWith('/devices') && r.status() === 200);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await answered;
    await page.getByText('Updated just now.').waitFor();
  });

  await step('an inline rename persists after a reload', async () => {
    await page.getByRole('button', { name: `Rename ${DEVICE_NAME}` }).click();
    const input = card(page, DEVICE).getByLabel('New name');
    await input.fill(NEW_NAME);
    await input.press('Enter');
    await card(page, DEVICE).locator('h2.name', { hasText: NEW_NAME }).waitFor();
    // Keyboard: Escape cancels an edit.
    await page.getByRole('button', { name: `Rename ${NEW_NAME}` }).click();
    await card(page, DEVICE).getByLabel('New name').press('Escape');
    await page.getByRole('button', { name: `Rename ${NEW_NAME}` }).waitFor();
    expect(
      await page.getByRole('button', { name: `Rename ${NEW_NAME}` }).evaluate((e) => e === document.activeElement),
      'after Escape the focus is back on the rename button',
    );
    await page.reload();
    await waitForState(page, DEVICE, 'on', 10_000);
    const shown = await card(page, DEVICE).locator('h2.name').textContent();
    expect(shown === NEW_NAME, `after a reload the card says "${shown}"`);
    // The manual refresh (GET devices) must agree with the stream's snapshot.
    const answered = page.waitForResponse((r) => r.url().endsWith('/devices') && r.status() === 200);
    await page.getByRole('button', { name: 'Refresh' }).click();
    const names = (await (await answered).json()).map((d) => d.name);
    expect(names.includes(NEW_NAME), `GET devices after the rename lists ${names.join(', ')}`);
    await shot(page, 'dags-desktop');
  });

  await step("the dag's page charts the outage", async () => {
    const battery24h = page.waitForResponse((r) => r.url().includes(`/v1/devices/${DEVICE}/battery?`));
    await card(page, DEVICE).getByRole('link', { name: /History and uptime/ }).click();
    await page.getByRole('heading', { name: NEW_NAME, level: 1 }).waitFor();
    await page.locator('svg.timeline').waitFor();
    // 24 h: the seeded 45-minute cut 20 hours ago and the one this test just made.
    await page.locator('[data-stat="outages"]', { hasText: /^2$/ }).waitFor({ timeout: 10_000 });
    expect((await page.locator('svg.timeline rect[data-power="off"]').count()) === 2, 'two off bands');
    const rows = page.locator('tr[data-outage]');
    expect((await rows.count()) === 2, 'two outages listed');
    expect(/^(under 1 s|\d+ s)$/.test(await rows.first().locator('td').nth(2).textContent()), 'the newest lasted seconds');
    expect(/^45 min$/.test(await rows.nth(1).locator('td').nth(2).textContent()), 'the older lasted 45 min');
    const uptime = await page.locator('[data-stat="uptime"]').textContent();
    expect(/^9\d\.\d\d %$/.test(uptime), `uptime ${uptime}`);
    // The battery over 24 h: the two seeded readings of the 45-minute cut (lowest 95.5 %)
    // and what dagd recorded from the agent's reports in this run (100 %, at least one per
    // power change: the cut and the restore above).
    const answer = await (await battery24h).json();
    const live = answer.readings.filter((r) => Date.now() - Date.parse(r.at) < 10 * 60_000);
    expect(live.length >= 2, `readings recorded in this run: ${JSON.stringify(answer.readings)}`);
    expect(live.some((r) => r.onBattery === true) && live.some((r) => r.onBattery === false), 'the cut and the restore are readings');
    expect(live.every((r) => r.percent === 100 && r.volts === 4.15), `live readings ${JSON.stringify(live)}`);
    const chart = page.locator('svg.battery-chart');
    await chart.waitFor();
    const points24h = Number(await chart.getAttribute('data-points'));
    expect(points24h === answer.readings.length && points24h >= 4, `24 h battery points: ${points24h}`);
    expect((await chart.locator('path.charge').getAttribute('d')).split('L').length === points24h, 'one line vertex per reading');
    expect((await chart.locator('rect.on-battery').count()) >= 2, 'the time on battery is shaded');
    const summary24h = await page.locator('[data-battery-summary]').textContent();
    expect(
      new RegExp(`^${points24h} battery readings in the last 24 hours: 100\\s% at the first, 100\\s% at the latest .*; lowest 96\\s% `).test(summary24h),
      `24 h battery summary: ${summary24h}`,
    );
    expect((await chart.getAttribute('aria-label')) === 'Battery charge over the last 24 hours', 'the chart has a name');
    // 7 days: the 2-hour cut 3 days ago too.
    await page.getByRole('button', { name: '7 d' }).click();
    await page.locator('[data-stat="outages"]', { hasText: /^3$/ }).waitFor({ timeout: 10_000 });
    await page.locator('tr[data-outage]').nth(2).waitFor();
    // ... and its battery readings: 4 more points, down to 79.5 %.
    await page.locator('[data-battery-summary]', { hasText: /in the last 7 days/ }).waitFor({ timeout: 10_000 });
    const points7d = Number(await page.locator('svg.battery-chart').getAttribute('data-points'));
    expect(points7d === points24h + 4, `7 d battery points: ${points7d} (24 h: ${points24h})`);
    const summary7d = await page.locator('[data-battery-summary]').textContent();
    expect(/; lowest 80\s% /.test(summary7d), `7 d battery summary: ${summary7d}`);
    expect((await page.getByRole('button', { name: '7 d' }).getAttribute('aria-pressed')) === 'true', 'aria-pressed');
    await shot(page, 'device-desktop');
    await accessible(page, "the dag's page");
  });

  await step('settings: an added e-mail shows "verification pending"', async () => {
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByRole('heading', { name: 'Notification e-mails' }).waitFor();
    await page.getByLabel('E-mail address').fill('owner@example.com');
    await page.getByRole('button', { name: 'Add e-mail' }).click();
    const item = page.locator('li.target', { hasText: 'owner@example.com' });
    await item.getByText('Verification pending').waitFor();
    await item.getByRole('button', { name: 'Resend verification to owner@example.com' }).waitFor();
  });

  await step('settings: a webhook gets a "send test" with its error', async () => {
    await page.getByLabel('URL').fill('http://127.0.0.1:9/hook');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    const item = page.locator('li.target', { hasText: 'http://127.0.0.1:9/hook' });
    await item.getByText('No deliveries yet').waitFor();
    await item.getByRole('button', { name: /^Send test to / }).click();
    await item.locator('.status.error', { hasText: 'Test failed' }).waitFor({ timeout: 20_000 });
  });

  await step('settings: preferences are saved', async () => {
    const low = page.getByLabel('Low battery at (%)');
    await low.fill('25');
    await page.getByLabel('Lost-contact grace period (seconds)').fill('0');
    await page.getByLabel('Power back').uncheck();
    await page.getByRole('button', { name: 'Save preferences' }).click();
    await page.getByText('Preferences saved.').waitFor();
    await shot(page, 'settings-desktop');
    await accessible(page, 'settings');
    await page.reload();
    await page.getByLabel('Low battery at (%)').waitFor();
    expect((await page.getByLabel('Low battery at (%)').inputValue()) === '25', 'low battery 25 after reload');
    expect(!(await page.getByLabel('Power back').isChecked()), 'power back unchecked after reload');
    expect((await page.getByLabel('Lost-contact grace period (seconds)').inputValue()) === '0', 'grace 0');
  });

  await step('settings: a wrong current password is refused', async () => {
    await page.getByLabel('Current password').fill('not it at all');
    await page.getByLabel('New password', { exact: true }).fill('another long password');
    await page.getByLabel('New password again').fill('another long password');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.getByText('The current password is wrong.').waitFor();
  });

  await step('a dag that falls silent on battery becomes Was Off, live', async () => {
    await page.getByRole('link', { name: 'Your dags' }).click();
    await waitForState(page, SILENT_DEVICE, 'off', 10_000);
    await run(CONTACT_LOSS);
    // The broker sends the agent's will; dagd asks the dag to report and, silence past the
    // account's grace (0 s now), calls it lost.
    await waitForState(page, SILENT_DEVICE, 'was_off', 20_000);
    const c = card(page, SILENT_DEVICE);
    expect((await c.locator('.badge').textContent()) === 'No contact', 'the badge says No contact');
    expect(/last heard from/i.test(await c.locator('.since').textContent()), 'last heard from');
    await shot(page, 'dags-desktop');
    await accessible(page, 'your dags');
  });

  await step('a refused stream shows "Reconnecting…" until it is back', async () => {
    let drop = true;
    await page.route('**/stream?*', (route) =>
      drop ? route.fulfill({ status: 503, contentType: 'application/json', body: '{}' }) : route.fallback(),
    );
    await page.goto(`${BASE}/#/`);
    await page.reload();
    await page.locator('.stream[data-status="reconnecting"]', { hasText: 'Reconnecting…' }).waitFor({ timeout: 10_000 });
    drop = false;
    await page.locator('.stream[data-status="live"]').waitFor({ timeout: 15_000 });
    await page.unroute('**/stream?*');
  });

  await step('an expired session returns to the login with a message', async () => {
    // Expired by its own clock...
    await page.evaluate(() => {
      const s = JSON.parse(localStorage.getItem('dag.session'));
      s.expiresAt = Date.now() - 1000;
      localStorage.setItem('dag.session', JSON.stringify(s));
    });
    await page.reload();
    await page.getByRole('alert').filter({ hasText: 'Your session has expired' }).waitFor();
    // ... and refused by dagd (401) although it looks valid.
    await login(page);
    await page.getByRole('heading', { name: 'Your dags', exact: true }).waitFor();
    await page.evaluate(() => {
      const s = JSON.parse(localStorage.getItem('dag.session'));
      s.token = s.token.slice(0, -4) + 'AAAA';
      localStorage.setItem('dag.session', JSON.stringify(s));
    });
    await page.reload();
    await page.getByRole('alert').filter({ hasText: 'Your session has expired' }).waitFor({ timeout: 10_000 });
    expect((await page.evaluate(() => localStorage.getItem('dag.session'))) === null, 'the token is forgotten');
  });

  await step('logging out ends the session', async () => {
    await login(page);
    await page.getByRole('heading', { name: 'Your dags', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByRole('alert').filter({ hasText: 'You have logged out.' }).waitFor();
    expect((await page.evaluate(() => localStorage.getItem('dag.session'))) === null, 'the token is forgotten');
  });

  // ---- phone ------------------------------------------------------------------------------
  const phone = await browser.newContext({
    viewport: { width: 375, height: 812 },
    isMobile: true,
    hasTouch: true,
    timezoneId: 'UTC',
  });
  page = watch(await phone.newPage());

  await step('on a 375 px phone every page fits', async () => {
    await page.goto(BASE, { waitUntil: 'domcontentloaded' });
    await page.getByRole('heading', { name: 'Log in to see your dags' }).waitFor();
    await noHorizontalScroll(page, 'login');
    await shot(page, 'login-phone');
    await login(page);
    await waitForState(page, DEVICE, 'on', 10_000);
    await noHorizontalScroll(page, 'your dags');
    await shot(page, 'dags-phone');
    await card(page, DEVICE).getByRole('link', { name: /History and uptime/ }).click();
    await page.locator('[data-stat="outages"]', { hasText: /^2$/ }).waitFor({ timeout: 10_000 });
    await noHorizontalScroll(page, "the dag's page");
    await shot(page, 'device-phone');
    await page.getByRole('link', { name: 'Settings' }).click();
    await page.getByLabel('Low battery at (%)').waitFor();
    await noHorizontalScroll(page, 'settings');
    await shot(page, 'settings-phone');
  });

  await step('a dropped stream shows "Reconnecting…", and the change made meanwhile after', async () => {
    const r = await relay(BASE);
    origins.push(r.url);
    const p = watch(await desktop.newPage());
    try {
      await p.goto(r.url, { waitUntil: 'domcontentloaded' });
      await login(p);
      await waitForState(p, DEVICE, 'on', 10_000);
      await p.locator('.stream[data-status="live"]').waitFor({ timeout: 10_000 });
      r.cut();
      await p.locator('.stream[data-status="reconnecting"]').waitFor({ timeout: 10_000 });
      await run(POWER_OFF);
      r.resume();
      // The browser reconnects (dagd asks for 2 s) with Last-Event-ID and gets what it missed.
      await waitForState(p, DEVICE, 'off', 15_000);
      await p.locator('.stream[data-status="live"]').waitFor({ timeout: 10_000 });
      await run(POWER_ON);
      await waitForState(p, DEVICE, 'on', LIVE_BOUND_MS);
    } finally {
      await p.close();
      await r.close();
    }
  });

  await step('nothing ran that should not have', async () => {
    expect(dialogs.length === 0, `dialogs opened: ${dialogs.join('; ')}`);
    expect(pageErrors.length === 0, `page errors: ${pageErrors.join('; ')}`);
    expect(foreign.length === 0, `requests to elsewhere: ${foreign.join(', ')}`);
    expect(cspViolations.length === 0, `CSP violations: ${cspViolations.join('; ')}`);
  });
} catch (e) {
  failed = true;
  if (!(e instanceof Failure)) console.log(e instanceof Error ? e.stack : e);
  if (page) {
    const where = join(tmpdir(), `dag-web-e2e-failure-${Date.now()}.png`);
    await page.screenshot({ path: where, fullPage: true }).catch(() => {});
    console.log(`     screenshot of the failure: ${where}`);
  }
} finally {
  await browser.close();
}
console.log(`e2e: ${passed} passed, ${failed ? 1 : 0} failed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(failed ? 1 : 0);
