// Calls to dagd's REST API (docs/api.md) with the session's token. A 401 ends the session
// (onUnauthorized), whatever the call was.

import type {
  Account,
  AuthResponse,
  BatteryReadings,
  DagEvent,
  Device,
  EventPage,
  Preferences,
  Target,
  TargetKind,
  Uptime,
} from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let token = '';
let unauthorized: () => void = () => {};

export function setToken(t: string): void {
  token = t;
}

export function onUnauthorized(fn: () => void): void {
  unauthorized = fn;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
    });
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the server. Check your connection.');
  }
  if (res.status === 204) return undefined as T;
  let data: unknown = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  if (!res.ok) {
    const err = (data ?? {}) as { code?: string; message?: string };
    if (res.status === 401 && path !== '/v1/auth') unauthorized();
    if (res.status === 429) {
      const after = res.headers.get('Retry-After');
      throw new ApiError(
        429,
        'rate_limited',
        `Too many attempts. Try again${after ? ` in ${after} seconds` : ' later'}.`,
      );
    }
    throw new ApiError(res.status, err.code ?? 'error', err.message ?? `HTTP ${res.status}`);
  }
  return data as T;
}

const enc = encodeURIComponent;

export const api = {
  login: (username: string, password: string) =>
    call<AuthResponse>('POST', '/v1/auth', { username, password }),
  account: (id: string) => call<Account>('GET', `/v1/accounts/${enc(id)}`),
  devices: (id: string) => call<Device[]>('GET', `/v1/accounts/${enc(id)}/devices`),
  device: (id: string) => call<Device>('GET', `/v1/devices/${enc(id)}`),
  rename: (id: string, name: string) => call<Device>('PATCH', `/v1/devices/${enc(id)}`, { name }),
  events: (id: string, q: { since?: number; until?: number; limit?: number; cursor?: string }) => {
    const p = new URLSearchParams();
    if (q.since !== undefined) p.set('since', String(Math.floor(q.since)));
    if (q.until !== undefined) p.set('until', String(Math.floor(q.until)));
    if (q.limit !== undefined) p.set('limit', String(q.limit));
    if (q.cursor) p.set('cursor', q.cursor);
    return call<EventPage>('GET', `/v1/devices/${enc(id)}/events?${p.toString()}`);
  },
  battery: (id: string, q: { since: number; until: number; limit: number }) =>
    call<BatteryReadings>(
      'GET',
      `/v1/devices/${enc(id)}/battery?since=${Math.floor(q.since)}&until=${Math.floor(q.until)}&limit=${q.limit}`,
    ),
  uptime: (id: string, days: number) =>
    call<Uptime>('GET', `/v1/devices/${enc(id)}/uptime?days=${days}`),
  preferences: (id: string) => call<Preferences>('GET', `/v1/accounts/${enc(id)}/preferences`),
  savePreferences: (id: string, p: Partial<Preferences>) =>
    call<Preferences>('PATCH', `/v1/accounts/${enc(id)}/preferences`, p),
  changePassword: (id: string, currentPassword: string, newPassword: string) =>
    call<void>('POST', `/v1/accounts/${enc(id)}/password`, { currentPassword, newPassword }),
  targets: (id: string) => call<Target[]>('GET', `/v1/accounts/${enc(id)}/targets`),
  addTarget: (id: string, t: { kind: TargetKind; address: string; secret?: string }) =>
    call<Target>('POST', `/v1/accounts/${enc(id)}/targets`, t),
  removeTarget: (id: string, target: string) =>
    call<void>('DELETE', `/v1/accounts/${enc(id)}/targets/${enc(target)}`),
  testTarget: (id: string, target: string) =>
    call<{ delivered: boolean; error: string | null }>(
      'POST',
      `/v1/accounts/${enc(id)}/targets/${enc(target)}/test`,
    ),
  resendVerification: (id: string, target: string) =>
    call<{ requested: boolean }>('POST', `/v1/accounts/${enc(id)}/targets/${enc(target)}/verify`),
};

/** Every event of a device observed in [since, until), newest first, following cursors
 * up to `maxPages` pages of 1000. */
export async function allEvents(
  id: string,
  since: number,
  until: number,
  maxPages = 10,
): Promise<DagEvent[]> {
  const out: DagEvent[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < maxPages; page++) {
    const r = await api.events(id, { since, until, limit: 1000, cursor });
    out.push(...r.events);
    if (!r.nextCursor) break;
    cursor = r.nextCursor;
  }
  return out;
}

/** The newest power event observed before `until` (the power state at a window's start). */
export async function lastPowerEventBefore(id: string, until: number): Promise<DagEvent | null> {
  let cursor: string | undefined;
  for (let page = 0; page < 5; page++) {
    const r = await api.events(id, { until, limit: 200, cursor });
    const found = r.events.find((e) => e.kind === 'power_on' || e.kind === 'power_off');
    if (found) return found;
    if (!r.nextCursor) break;
    cursor = r.nextCursor;
  }
  return null;
}
