// The account's devices, kept current by dagd's event stream (docs/api.md, "Live
// events"): a `snapshot` replaces them all, a `device` replaces one. When the stream drops
// the browser reconnects by itself (dagd asks for 2 s); when it cannot (an error answer),
// we check the session and open a new stream with a growing delay.

import { api } from './api';
import type { Device } from './types';

export type StreamStatus = 'connecting' | 'live' | 'reconnecting' | 'closed';

type Listener = () => void;

const devices = new Map<string, Device>();
const listeners = new Set<Listener>();
const statusListeners = new Set<Listener>();
let status: StreamStatus = 'closed';
let source: EventSource | null = null;
let retry: ReturnType<typeof setTimeout> | null = null;
let attempts = 0;
let account = '';
let token = '';
let loaded = false;

function emit(): void {
  for (const l of listeners) l();
}

function setStatus(s: StreamStatus): void {
  if (s === status) return;
  status = s;
  for (const l of statusListeners) l();
}

function parse(data: string): unknown {
  try {
    return JSON.parse(data);
  } catch {
    return null;
  }
}

const isDevice = (d: unknown): d is Device =>
  typeof d === 'object' && d !== null && typeof (d as Device).deviceId === 'string';

export function replaceAll(list: Device[]): void {
  devices.clear();
  for (const d of list) {
    if (!isDevice(d)) continue;
    devices.set(d.deviceId, d);
  }
  loaded = true;
  emit();
}

export function upsert(d: Device): void {
  devices.set(d.deviceId, d);
  emit();
}

function open(): void {
  retry = null;
  const url = `/v1/accounts/${encodeURIComponent(account)}/stream?access_token=${encodeURIComponent(token)}`;
  const es = new EventSource(url);
  source = es;
  es.addEventListener('open', () => {
    attempts = 0;
    setStatus('live');
  });
  es.addEventListener('snapshot', (e) => {
    const list = parse((e as MessageEvent<string>).data);
    if (Array.isArray(list)) replaceAll(list as Device[]);
    setStatus('live');
  });
  es.addEventListener('device', (e) => {
    const d = parse((e as MessageEvent<string>).data);
    if (isDevice(d)) upsert(d);
    setStatus('live');
  });
  es.addEventListener('error', () => {
    if (source !== es) return;
    setStatus('reconnecting');
    if (es.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    es.close();
    source = null;
    // An error answer (401, 503): a 401 from this call ends the session (api.ts); the
    // list comes by hand meanwhile.
    if (loaded) void api.account(account).catch(() => {});
    else void refresh().catch(() => {});
    const delay = Math.min(30_000, 1_000 * 2 ** attempts++);
    retry = setTimeout(open, delay);
  });
}

/** Opens the stream for the account (closing any other). */
export function connect(accountId: string, accessToken: string): void {
  disconnect();
  account = accountId;
  token = accessToken;
  attempts = 0;
  setStatus('connecting');
  open();
}

export function disconnect(): void {
  if (retry) clearTimeout(retry);
  retry = null;
  source?.close();
  source = null;
  devices.clear();
  loaded = false;
  setStatus('closed');
}

/** Reloads the list by hand (GET devices), whatever the stream is doing. */
export async function refresh(): Promise<void> {
  replaceAll(await api.devices(account));
}

export const live = {
  list: (): Device[] =>
    [...devices.values()].sort((a, b) => a.name.localeCompare(b.name) || a.deviceId.localeCompare(b.deviceId)),
  get: (id: string): Device | undefined => devices.get(id),
  loaded: () => loaded,
  status: () => status,
  /** Calls `fn` after every change; returns the unsubscribe function. */
  subscribe(fn: Listener): () => void {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  onStatus(fn: Listener): () => void {
    statusListeners.add(fn);
    return () => statusListeners.delete(fn);
  },
};
