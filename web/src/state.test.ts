import { describe, expect, it } from 'vitest';
import { batteryText, connectionText, lookOf } from './state';
import type { Device, UserStateName } from './types';

function device(state: UserStateName | null, extra: Partial<Device> = {}): Device {
  return {
    deviceId: 'd1',
    name: 'Home',
    state: { power: state === 'off' || state === 'was_off' ? 'off' : state ? 'on' : null, updated: null },
    connection: { status: state === 'was_on' || state === 'was_off' ? 'disconnected' : state ? 'connected' : null, updated: null },
    userState: { state, title: null, explanation: null },
    battery: null,
    lastSeen: null,
    provisionedAt: '2026-11-01T00:00:00.000Z',
    ...extra,
  };
}

describe('lookOf', () => {
  it("has the original's four states, and a waiting one", () => {
    expect(lookOf(device('on')).title).toBe('On');
    expect(lookOf(device('off')).title).toBe('Off');
    expect(lookOf(device('was_on')).title).toBe('Was On');
    expect(lookOf(device('was_off')).title).toBe('Was Off');
    expect(lookOf(device(null)).key).toBe('unknown');
    expect(lookOf(device('was_off')).noSignal).toBe(true);
    expect(lookOf(device('off')).noSignal).toBe(false);
  });
  it("prefers dagd's title and explanation", () => {
    const d = device('off', { userState: { state: 'off', title: 'Power cut', explanation: 'Dark.' } });
    expect(lookOf(d).title).toBe('Power cut');
    expect(lookOf(d).explanation).toBe('Dark.');
  });
});

describe('batteryText', () => {
  it('is null without a gauge', () => {
    expect(batteryText(device('on'))).toBeNull();
    expect(batteryText(device('on', { battery: { volts: 4 } }))).toBeNull();
  });
  it('shows the time left only while on battery', () => {
    expect(batteryText(device('on', { battery: { percent: 99.6, minutesLeft: null } }))).toBe('Battery 100 %');
    expect(batteryText(device('off', { battery: { percent: 64.5, minutesLeft: 312, low: false } }))).toBe(
      'Battery 65 % · about 5 h 12 min left',
    );
    expect(batteryText(device('off', { battery: { percent: 15, minutesLeft: null, low: true } }))).toBe(
      'Battery 15 % (low) · estimating time left',
    );
    expect(batteryText(device('was_off', { battery: { percent: 15, minutesLeft: 20 } }))).toBe('Battery 15 %');
  });
});

describe('connectionText', () => {
  it('names the three connection states', () => {
    expect(connectionText(device('on')).text).toBe('Connected');
    expect(connectionText(device('was_on')).text).toBe('No contact');
    expect(connectionText(device(null)).text).toBe('Never seen');
  });
});
