/**
 * Which pages are still open, so one page adopts the unsent events of a closed one and never
 * those of a live one. Each page holds a Web Lock named after its id for as long as it lives;
 * the browser releases it when the page goes (closed, reloaded, crashed), and
 * `navigator.locks.query()` lists the held ones across the origin's pages.
 */

import type { QueuedEvent } from "./store.js";

/** Where the browser has no Web Locks, an event of another page waiting this long is taken
 * over: that page may still be open, and then the event is sent twice (the API keeps one). */
export const ORPHAN_AFTER_MS = 5 * 60_000;

const LOCK_PREFIX = "feedback-flywheel-page ";

/** This page's identity among the origin's pages. */
export class Pages {
  /** Resolves once this page holds its lock (at once without Web Locks). */
  readonly ready: Promise<void>;
  private release: () => void = () => {};

  constructor(
    readonly id: string,
    private readonly locks: LockManager | undefined,
    private readonly now: () => number,
  ) {
    this.ready = locks
      ? new Promise((held) => {
          void locks.request(LOCK_PREFIX + id, () => {
            held();
            return new Promise<void>((release) => (this.release = release));
          });
        })
      : Promise.resolve();
  }

  /** A test telling whether a record's owner is gone, as of now. */
  async orphaned(): Promise<(record: QueuedEvent) => boolean> {
    if (!this.locks) {
      const cutoff = this.now() - ORPHAN_AFTER_MS;
      return (record) => record.at < cutoff;
    }
    const { held = [] } = await this.locks.query();
    const alive = new Set(held.map((lock) => lock.name));
    return (record) => !alive.has(LOCK_PREFIX + record.owner);
  }

  /** Gives the lock back: this page's events become another page's to send. */
  close(): void {
    this.release();
  }
}
