// The API's shapes (docs/openapi.yaml), as the dashboard uses them.

export type UserStateName = 'on' | 'off' | 'was_on' | 'was_off';

export interface Battery {
  percent?: number;
  volts?: number;
  minutesLeft?: number | null;
  low?: boolean;
  [key: string]: unknown;
}

export interface Device {
  deviceId: string;
  name: string;
  state: { power: 'on' | 'off' | null; updated: string | null };
  connection: { status: 'connected' | 'disconnected' | null; updated: string | null };
  userState: { state: UserStateName | null; title: string | null; explanation: string | null };
  battery: Battery | null;
  lastSeen: string | null;
  provisionedAt: string;
}

export interface BatteryReading {
  at: string;
  percent: number | null;
  volts: number | null;
  minutesLeft: number | null;
  onBattery: boolean | null;
}

export interface BatteryReadings {
  deviceId: string;
  readings: BatteryReading[];
}

export type EventKind = 'power_off' | 'power_on' | 'lost_contact' | 'back' | 'battery_low';

export interface DagEvent {
  id: string;
  kind: EventKind;
  observedAt: string;
  receivedAt: string;
  seq: number | null;
  clockFallback: boolean;
  userState: UserStateName | null;
}

export interface EventPage {
  events: DagEvent[];
  nextCursor: string | null;
}

export interface Uptime {
  deviceId: string;
  days: number;
  from: string;
  until: string;
  monitoredMs: number;
  availability: number | null;
  outageCount: number;
  totalOutageMs: number;
  longestOutageMs: number;
  ongoing: boolean;
}

export interface Account {
  accountId: string;
  username: string;
  emails: string[];
  createdAt: string;
}

export interface NotifySettings {
  powerLost: boolean;
  powerBack: boolean;
  contactLost: boolean;
  dagBack: boolean;
  batteryLow: boolean;
}

export interface Preferences {
  powerOffGraceSeconds: number;
  disconnectGraceSeconds: number;
  lowBatteryPercent: number;
  timeZone: string;
  notify: NotifySettings;
}

export type TargetKind = 'email' | 'webhook' | 'ntfy';

export interface Target {
  targetId: string;
  kind: TargetKind;
  address: string;
  verified: boolean;
  verificationSentAt: string | null;
  createdAt: string;
  hasSecret: boolean;
  bodyTemplate: string | null;
  contentType: string | null;
  health: {
    failureCount: number;
    lastError: string | null;
    lastErrorAt: string | null;
    lastSuccessAt: string | null;
  };
}

export interface AuthResponse {
  token: string;
  accountId: string;
  expiresAt: string;
}
