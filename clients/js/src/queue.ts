/**
 * A page's queue of unsent events: batching by count and time, one request at a time, retries
 * with backoff, the durable copy in a `QueueStore`, the last send of a page that goes, and the
 * adoption of events left by closed pages.
 *
 * Delivery is at least once: an event leaves the queue when the API answered for it. The one
 * case of a second send is a page that went with a request in flight whose answer never came:
 * the event is still stored, and the next page sends it again with the same `event_id`, which the
 * API's ingest keeps once.
 */

import { retryDelay } from "./retry.js";
import { MemoryStore, type QueuedEvent, type QueueStore } from "./store.js";
import type { Pages } from "./tabs.js";
import type { Outcome, Transport } from "./transport.js";
import type { DroppedEvents, EventError, TrackedEvent } from "./types.js";

/** The API's limits: events per request, bytes per request and per event. */
export const MAX_BATCH_EVENTS = 500;
export const MAX_BATCH_BYTES = 512 * 1024;
export const MAX_EVENT_BYTES = 64 * 1024;

/** What browsers let a page send as it goes (keepalive fetch and sendBeacon share 64 KiB). */
export const BEACON_MAX_BYTES = 60 * 1024;

/** Events handed to `sendBeacon`, whose answer is never seen, wait this long before the page
 * (if it lives on) sends them again. */
export const BEACON_LEASE_MS = 60_000;

/** How often a page looks for events left by closed pages. */
export const ADOPT_EVERY_MS = 30_000;

export interface QueueOptions {
  flushAt: number;
  flushIntervalMs: number;
  maxQueueSize: number;
  maxRetries: number;
  onDrop: (dropped: DroppedEvents) => void;
}

/** What the queue needs of its surroundings (the browser's, or a test's clock). */
export interface QueueEnv {
  now: () => number;
  random: () => number;
  setTimeout: (run: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
}

const encoder = new TextEncoder();

export class Queue {
  private readonly items = new Map<string, QueuedEvent>();
  /** Events in a request: until when (Infinity while the answer is awaited). */
  private readonly leases = new Map<string, number>();
  private seq = 0;
  private failures = 0;
  private pausedUntil = 0;
  private maxBatch = MAX_BATCH_EVENTS;
  private timer: unknown = null;
  private timerAt = Infinity;
  private running: Promise<void> | null = null;
  private soon = false;
  private writes: Promise<unknown> = Promise.resolve();
  private lastAdoption = -Infinity;
  /** Storage other pages see (not memory): adopting their leftovers makes sense. */
  private shared = false;
  /** Sending at all (the user's consent); an inactive queue only takes and clears events. */
  private active = false;
  private closed = false;

  constructor(
    private readonly transport: Transport,
    private readonly store: Promise<QueueStore>,
    private readonly pages: Pages,
    private readonly options: QueueOptions,
    private readonly env: QueueEnv,
  ) {
    void store.then((opened) => {
      this.shared = !(opened instanceof MemoryStore);
      this.schedule();
    });
  }

  /** Events this page holds unsent. */
  get size(): number {
    return this.items.size;
  }

  /** Starts or stops sending (and adopting other pages' events). */
  setActive(active: boolean): void {
    this.active = active;
    if (active) this.schedule();
    else this.setTimer(Infinity);
  }

  /** The network is back: send now, whatever the backoff said. */
  resume(): void {
    this.pausedUntil = 0;
    for (const record of this.items.values()) record.notBefore = 0;
    void this.flush();
  }

  /** Queues an event; false (and `onDrop`) when it is over 64 KiB or the queue is full. */
  add(event: TrackedEvent): boolean {
    const bytes = encoder.encode(JSON.stringify(event)).length;
    const reason =
      bytes > MAX_EVENT_BYTES
        ? "too_large"
        : this.items.size >= this.options.maxQueueSize
          ? "queue_full"
          : null;
    if (reason) {
      this.report(reason, [event]);
      return false;
    }
    const now = this.env.now();
    const record: QueuedEvent = {
      id: event.event_id,
      event,
      bytes,
      owner: this.pages.id,
      at: now,
      seq: this.seq++,
      attempts: 0,
      notBefore: 0,
    };
    this.items.set(record.id, record);
    this.persist((store) => store.put([record]));
    this.schedule();
    return true;
  }

  /** Sends every event that may go now, one request after another, until none is left or the
   * API asks to wait. Resolves when done; never rejects. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
    this.running = this.drain();
    try {
      await this.running;
    } finally {
      this.running = null;
      this.schedule();
    }
  }

  /**
   * The send of a page being hidden or closed, started before returning (a page may not run
   * again): as many waiting events as fit in 64 KiB, by keepalive fetch or sendBeacon. If the
   * page lives on, the answer is handled as any other.
   */
  flushOnHide(): void {
    const now = this.env.now();
    if (this.closed || !this.active || now < this.pausedUntil) return;
    const batch = take(this.ready(now), MAX_BATCH_EVENTS, BEACON_MAX_BYTES);
    if (batch.length === 0) return;
    const { sent, pending } = this.transport.beacon(batch.map((record) => record.event));
    if (!sent) return;
    this.lease(batch, pending ? Infinity : now + BEACON_LEASE_MS);
    void pending?.then((outcome) => {
      this.release(batch);
      this.apply(batch, outcome);
      this.schedule();
    });
  }

  /** Takes over the stored events of pages that are gone, and sends them. */
  async adopt(): Promise<void> {
    this.lastAdoption = this.env.now();
    if (!this.shared) return;
    try {
      const [store, orphaned] = await Promise.all([this.store, this.pages.orphaned()]);
      await this.pages.ready;
      const now = this.env.now();
      for (const record of await store.adopt(this.pages.id, orphaned)) {
        // Left behind by a closed page: due now, unless a backoff still runs.
        record.notBefore = Math.max(record.notBefore, now);
        if (!this.items.has(record.id)) this.items.set(record.id, record);
      }
    } catch {
      // Storage refused: those events wait for the next page or the next try.
    }
    this.schedule();
  }

  /** Forgets every unsent event of this page and of closed pages, here and in storage (consent
   * withdrawn). Events of other open pages are theirs to clear. */
  async clear(reason: DroppedEvents["reason"]): Promise<void> {
    this.setActive(false);
    await this.adopt();
    const records = [...this.items.values()];
    this.forget(records);
    if (records.length) {
      this.report(
        reason,
        records.map((record) => record.event),
      );
    }
    await this.writes;
  }

  /** Stops the timers; stored events stay for the next page. */
  close(): void {
    this.closed = true;
    this.setTimer(Infinity);
  }

  /** Resolves when every storage write so far has finished (for tests and `close`). */
  settled(): Promise<unknown> {
    return this.writes;
  }

  private async drain(): Promise<void> {
    while (!this.closed && this.active) {
      const now = this.env.now();
      if (now < this.pausedUntil) return;
      const batch = take(this.ready(now), this.maxBatch, MAX_BATCH_BYTES);
      if (batch.length === 0) return;
      this.lease(batch, Infinity);
      const outcome = await this.transport.send(batch.map((record) => record.event));
      this.release(batch);
      if (!this.apply(batch, outcome)) return;
    }
  }

  /** Acts on an answer; false when the queue must wait before the next request. */
  private apply(batch: QueuedEvent[], outcome: Outcome): boolean {
    switch (outcome.kind) {
      case "done": {
        this.failures = 0;
        const accepted = new Set(outcome.accepted);
        const rejected = batch.filter((_, index) => outcome.rejected.has(index));
        this.forget(batch.filter((_, index) => accepted.has(index) || outcome.rejected.has(index)));
        if (rejected.length) {
          const errors = new Map(batch.map((record, index) => [record.id, outcome.rejected.get(index)]));
          this.report(
            "rejected",
            rejected.map((record) => record.event),
            undefined,
            errors,
          );
        }
        return true;
      }
      case "split":
        this.maxBatch = Math.max(1, Math.ceil(batch.length / 2));
        return true;
      case "refused":
        this.forget(batch);
        this.report(
          "refused",
          batch.map((record) => record.event),
          outcome.status,
        );
        return true;
      case "retry": {
        const now = this.env.now();
        this.failures += 1;
        this.pausedUntil = now + retryDelay(this.failures, outcome.retryAfterMs, this.env.random);
        // Only an answer asking to retry counts: without one (offline, the API unreachable) the
        // events wait, stored, for as long as it takes.
        const counted = !outcome.network;
        const exhausted = [];
        for (const record of batch) {
          if (counted) record.attempts += 1;
          record.notBefore = this.pausedUntil;
          if (record.attempts > this.options.maxRetries) exhausted.push(record);
        }
        this.forget(exhausted);
        if (exhausted.length) {
          this.report(
            "retries_exhausted",
            exhausted.map((record) => record.event),
            outcome.status,
          );
        }
        const waiting = batch.filter((record) => this.items.has(record.id));
        if (waiting.length) this.persist((store) => store.put(waiting));
        return false;
      }
    }
  }

  /** Events that may be sent now, oldest first. */
  private ready(now: number): QueuedEvent[] {
    return [...this.items.values()]
      .filter((record) => !((this.leases.get(record.id) ?? 0) > now) && record.notBefore <= now)
      .sort((a, b) => a.at - b.at || a.seq - b.seq);
  }

  private lease(batch: QueuedEvent[], until: number): void {
    for (const record of batch) this.leases.set(record.id, until);
  }

  private release(batch: QueuedEvent[]): void {
    for (const record of batch) this.leases.delete(record.id);
  }

  private forget(records: QueuedEvent[]): void {
    if (records.length === 0) return;
    const ids = records.map((record) => record.id);
    for (const id of ids) {
      this.items.delete(id);
      this.leases.delete(id);
    }
    this.persist((store) => store.remove(ids));
  }

  /** Runs storage writes in order, after the store is open and this page holds its lock; a
   * refused write leaves the event in memory, still sent. */
  private persist(write: (store: QueueStore) => Promise<void>): void {
    this.writes = this.writes
      .then(async () => {
        const store = await this.store;
        await this.pages.ready;
        await write(store);
      })
      .catch(() => undefined);
  }

  /** Arms the timer for the next send: now when `flushAt` events wait, else when the oldest
   * has waited `flushIntervalMs`, never before a backoff ends. */
  private schedule(): void {
    if (this.closed || !this.active) return;
    const now = this.env.now();
    if (this.shared && now - this.lastAdoption >= ADOPT_EVERY_MS) {
      void this.adopt();
      return;
    }
    const waiting = [...this.items.values()].filter((record) => !((this.leases.get(record.id) ?? 0) > now));
    let at = this.shared ? now + ADOPT_EVERY_MS : Infinity;
    if (waiting.length) {
      // A retried event is due when its backoff ends, a new one after the interval.
      const due =
        waiting.length >= this.options.flushAt
          ? now
          : Math.min(
              ...waiting.map((r) => (r.notBefore > 0 ? r.notBefore : r.at + this.options.flushIntervalMs)),
            );
      at = Math.max(due, this.pausedUntil);
    } else {
      const leased = [...this.leases.values()].filter((until) => until !== Infinity);
      if (leased.length) at = Math.min(at, ...leased);
    }
    this.setTimer(at);
  }

  private setTimer(at: number): void {
    if (this.timer !== null) {
      if (this.timerAt <= at && at !== Infinity) return;
      this.env.clearTimeout(this.timer);
      this.timer = null;
      this.timerAt = Infinity;
    }
    if (at === Infinity || this.closed || !this.active) return;
    if (at <= this.env.now()) {
      // Due now: send in this turn of the event loop, once however many events came in.
      if (!this.soon) {
        this.soon = true;
        queueMicrotask(() => {
          this.soon = false;
          void this.flush();
        });
      }
      return;
    }
    this.timerAt = at;
    this.timer = this.env.setTimeout(
      () => {
        this.timer = null;
        this.timerAt = Infinity;
        void this.flush();
      },
      Math.max(0, at - this.env.now()),
    );
  }

  private report(
    reason: DroppedEvents["reason"],
    events: TrackedEvent[],
    status?: number,
    errors?: Map<string, EventError[] | undefined>,
  ): void {
    const dropped: DroppedEvents = {
      reason,
      events: events.map((event) => {
        const found = errors?.get(event.event_id);
        return found
          ? { event_id: event.event_id, type: event.type, errors: found }
          : { event_id: event.event_id, type: event.type };
      }),
    };
    if (status !== undefined) dropped.status = status;
    try {
      this.options.onDrop(dropped);
    } catch {
      // The page's callback failing must not stop the queue.
    }
  }
}

/** The oldest of `ready` that fit one request: at most `maxEvents`, at most `maxBytes` as a
 * body (an event too large for it is left for a later request). */
function take(ready: QueuedEvent[], maxEvents: number, maxBytes: number): QueuedEvent[] {
  const batch = [];
  let bytes = '{"events":[]}'.length;
  for (const record of ready) {
    if (batch.length >= maxEvents) break;
    const more = record.bytes + (batch.length ? 1 : 0);
    if (bytes + more > maxBytes) continue;
    batch.push(record);
    bytes += more;
  }
  return batch;
}
