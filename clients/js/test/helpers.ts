/** What the tests share: a clock whose time moves only when told, an API answering from a
 * script, Web Locks shared by the "pages" of one origin, and localStorage. */

import assert from "node:assert/strict";
import { IDBFactory } from "fake-indexeddb";
import type { Env } from "../src/tracker.js";
import type { TrackedEvent, TrackerOptions } from "../src/types.js";
import { Tracker } from "../src/tracker.js";

/** Lets pending promises, IndexedDB requests and fetch answers run. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** A clock for the tracker's timers: `advance` runs the timers that come due, in order. */
export class FakeClock {
  time = Date.parse("2026-03-01T12:00:00Z");
  private timers = new Map<number, { at: number; run: () => void }>();
  private next = 1;

  now = (): number => this.time;

  setTimeout = (run: () => void, ms: number): unknown => {
    const id = this.next++;
    this.timers.set(id, { at: this.time + Math.max(0, ms), run });
    return id;
  };

  clearTimeout = (handle: unknown): void => {
    this.timers.delete(handle as number);
  };

  /** Moves time forward by `ms`, running each timer due on the way at its time. */
  async advance(ms: number): Promise<void> {
    const end = this.time + ms;
    await settle();
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].run();
      await settle();
    }
    this.time = end;
    await settle();
  }
}

/** One request the tracker made, as the fake API saw it. */
export interface Sent {
  url: URL;
  headers: Headers;
  keepalive: boolean;
  body: string;
  events: TrackedEvent[];
  at: number;
}

type Answer = Response | "network-error";

/** The API: records requests; `answers` are used in order, then `fallback` (202). */
export class FakeApi {
  readonly sent: Sent[] = [];
  readonly answers: ((request: Sent) => Answer)[] = [];
  fallback: (request: Sent) => Answer = (request) => accepted(request);

  constructor(private readonly clock: FakeClock) {}

  fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const body = typeof init?.body === "string" ? init.body : "";
    const request: Sent = {
      url: new URL(String(input)),
      headers: new Headers(init?.headers),
      keepalive: init?.keepalive === true,
      body,
      events: body ? (JSON.parse(body) as { events: TrackedEvent[] }).events : [],
      at: this.clock.now(),
    };
    this.sent.push(request);
    const answer = (this.answers.shift() ?? this.fallback)(request);
    if (answer === "network-error") throw new TypeError("Failed to fetch");
    return answer;
  };

  /** Every event id sent, in order, resends included. */
  ids(): string[] {
    return this.sent.flatMap((request) => request.events.map((event) => event.event_id));
  }
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json", ...headers },
  });
}

export function accepted(request: Sent): Response {
  return json(202, {
    accepted: request.events.length,
    event_ids: request.events.map((event) => event.event_id),
  });
}

/** A 207 that rejects the events at `bad` (by index) and accepts the others. */
export function partly(bad: number[]): (request: Sent) => Response {
  return (request) => {
    const results = request.events.map((event, index) =>
      bad.includes(index)
        ? {
            index,
            status: "rejected",
            errors: [{ path: "value", type: "literal_error", message: "Input should be 'up' or 'down'" }],
          }
        : { index, status: "accepted", event_id: event.event_id },
    );
    return json(207, { accepted: request.events.length - bad.length, rejected: bad.length, results });
  };
}

/** Web Locks of one origin: exclusive locks, held until the callback's promise settles. */
export class FakeLocks {
  private held = new Set<string>();
  private waiting = new Map<string, (() => void)[]>();

  async request<T>(name: string, callback: () => T | Promise<T>): Promise<T> {
    while (this.held.has(name))
      await new Promise<void>((go) => this.waiting.set(name, [...(this.waiting.get(name) ?? []), go]));
    this.held.add(name);
    try {
      return await callback();
    } finally {
      this.held.delete(name);
      this.waiting.get(name)?.shift()?.();
    }
  }

  async query(): Promise<{ held: { name: string }[] }> {
    return { held: [...this.held].map((name) => ({ name })) };
  }

  /** A page crashed: its lock goes without its code running. */
  drop(name: string): void {
    assert.ok(this.held.delete(name), `${name} was not held`);
  }
}

/** localStorage over a Map. */
export class FakeStorage implements Storage {
  private items = new Map<string, string>();
  get length(): number {
    return this.items.size;
  }
  key(index: number): string | null {
    return [...this.items.keys()][index] ?? null;
  }
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, String(value));
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
  clear(): void {
    this.items.clear();
  }
}

/** The browser one origin's pages share: its storage, its locks, the network and the clock. */
export class Origin {
  readonly clock = new FakeClock();
  readonly api = new FakeApi(this.clock);
  readonly indexedDB: IDBFactory | undefined = new IDBFactory();
  readonly localStorage = new FakeStorage();
  readonly locks: FakeLocks | undefined = new FakeLocks();
  beacons: { url: string; body: string }[] = [];

  constructor(options: { indexedDB?: boolean; locks?: boolean } = {}) {
    if (options.indexedDB === false) this.indexedDB = undefined;
    if (options.locks === false) this.locks = undefined;
  }

  /** A page's environment: these shared parts plus its own window and document if given. */
  env(extra: Partial<Env> = {}): Env {
    const env: Env = {
      fetch: this.api.fetch,
      now: this.clock.now,
      random: () => 0.5,
      setTimeout: this.clock.setTimeout,
      clearTimeout: this.clock.clearTimeout,
      randomUUID: () => crypto.randomUUID(),
      sendBeacon: (url, body) => {
        this.beacons.push({ url, body });
        return true;
      },
      localStorage: this.localStorage,
      ...extra,
    };
    if (this.indexedDB) env.indexedDB = this.indexedDB;
    if (this.locks) env.locks = this.locks as unknown as LockManager;
    return env;
  }

  /** A page with a tracker that has the user's consent. */
  tracker(options: Partial<TrackerOptions> = {}, extra: Partial<Env> = {}): Tracker {
    return new Tracker({ ...OPTIONS, ...options }, this.env(extra));
  }
}

export const OPTIONS: TrackerOptions = {
  endpoint: "https://flywheel.example.com",
  key: "pk_live_test",
  app: { name: "web", version: "1.4.0" },
  userId: "user-1",
  consent: { training: true, policy_version: "2026-01" },
  storage: "memory",
  flushAt: 20,
  flushIntervalMs: 5000,
};

/** A rating input for response `n`. */
export function rating(n: number, value: "up" | "down" = "up") {
  return { response_id: `r-${n}`, conversation_id: "c-1", value } as const;
}
