// The login session: the API token, kept in localStorage so that a reload stays logged
// in. It ends on logout, at its expiry time, or when the API answers 401.

import type { AuthResponse } from './types';

export interface Session {
  token: string;
  accountId: string;
  expiresAt: number; // epoch ms
  username: string;
}

const KEY = 'dag.session';

export function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Partial<Session>;
    if (typeof s.token !== 'string' || typeof s.accountId !== 'string') return null;
    return {
      token: s.token,
      accountId: s.accountId,
      expiresAt: typeof s.expiresAt === 'number' ? s.expiresAt : 0,
      username: typeof s.username === 'string' ? s.username : '',
    };
  } catch {
    return null;
  }
}

export function saveSession(auth: AuthResponse, username: string): Session {
  const s: Session = {
    token: auth.token,
    accountId: auth.accountId,
    expiresAt: Date.parse(auth.expiresAt),
    username,
  };
  localStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

export function clearSession(): void {
  localStorage.removeItem(KEY);
}

export function isExpired(s: Session, now: number): boolean {
  return !(s.expiresAt > now);
}
