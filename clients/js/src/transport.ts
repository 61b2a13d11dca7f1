/**
 * One request and what its answer means for the events in it. Regular sends go to
 * `POST /v1/events?partial=true` with the key as a Bearer header; the last send of a hidden or
 * closing page goes to `POST /v1/beacon?key=...&partial=true` as `text/plain`, which needs no
 * CORS preflight, with `fetch(..., {keepalive: true})` or, failing that, `navigator.sendBeacon`.
 */

import { parseRetryAfter, RETRYABLE_STATUSES } from "./retry.js";
import type { EventError, TrackedEvent } from "./types.js";

/** What a request's answer says to do with its events (by their index in the request). */
export type Outcome =
  /** The API answered for each event: `accepted` are stored, `rejected` never will be, any other
   * index was not stored and may be sent again at once (a 422 without partial acceptance). */
  | { kind: "done"; accepted: number[]; rejected: Map<number, EventError[]> }
  /** Nothing was stored; send the same events again after `retryAfterMs` or a backoff.
   * `network`: no answer arrived at all. */
  | { kind: "retry"; retryAfterMs: number | null; network: boolean; status?: number }
  /** 413 for several events: send them in smaller requests. */
  | { kind: "split" }
  /** The API refused the request itself (a wrong key, a 4xx other than the retryable ones). */
  | { kind: "refused"; status: number };

/** What a transport needs of its surroundings. */
export interface TransportEnv {
  fetch: typeof fetch;
  now: () => number;
  setTimeout: (run: () => void, ms: number) => unknown;
  clearTimeout: (handle: unknown) => void;
  sendBeacon?: (url: string, body: string) => boolean;
}

/** A request that gets no answer within this time is given up and retried. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** Bodies at least this large are gzipped when `compress` is on. */
const COMPRESS_FROM_BYTES = 1024;

interface ResultPublic {
  index: number;
  status: "accepted" | "rejected";
  errors?: EventError[];
}

interface ErrorPublic {
  errors?: (EventError & { index?: number | null })[];
  results?: ResultPublic[];
}

/** Sends batches to one API with one key. */
export class Transport {
  private readonly base: string;

  constructor(
    endpoint: string,
    private readonly key: string,
    private readonly env: TransportEnv,
    private readonly compress = false,
  ) {
    this.base = endpoint.replace(/\/+$/, "");
  }

  /** The beacon route's URL: the key goes in it, so only a publishable key may ever be used. */
  beaconUrl(): string {
    return `${this.base}/v1/beacon?key=${encodeURIComponent(this.key)}&partial=true`;
  }

  /** Posts `events` to /v1/events and reads the answer. Never throws. */
  async send(events: TrackedEvent[]): Promise<Outcome> {
    const json = JSON.stringify({ events });
    const headers: Record<string, string> = {
      Authorization: `Bearer ${this.key}`,
      "Content-Type": "application/json",
    };
    let body: string | ArrayBuffer = json;
    if (this.compress && json.length >= COMPRESS_FROM_BYTES && typeof CompressionStream === "function") {
      body = await new Response(
        new Blob([json]).stream().pipeThrough(new CompressionStream("gzip")),
      ).arrayBuffer();
      headers["Content-Encoding"] = "gzip";
    }
    const abort = new AbortController();
    const timer = this.env.setTimeout(() => abort.abort(), REQUEST_TIMEOUT_MS);
    try {
      const response = await this.env.fetch(`${this.base}/v1/events?partial=true`, {
        method: "POST",
        headers,
        body,
        credentials: "omit",
        signal: abort.signal,
      });
      return await this.read(response, events.length);
    } catch {
      return { kind: "retry", retryAfterMs: null, network: true };
    } finally {
      this.env.clearTimeout(timer);
    }
  }

  /**
   * Sends `events` from a page that may be about to go: `pending` resolves with the outcome if
   * the page lives to see it; `sent` is false when neither keepalive fetch nor sendBeacon took it.
   */
  beacon(events: TrackedEvent[]): { sent: boolean; pending?: Promise<Outcome> } {
    const url = this.beaconUrl();
    const body = JSON.stringify({ events });
    try {
      // A string body is sent as text/plain: a simple request, no preflight before the page goes.
      const response = this.env.fetch(url, { method: "POST", body, keepalive: true, credentials: "omit" });
      return {
        sent: true,
        pending: response.then(
          (answer) => this.read(answer, events.length),
          (): Outcome => ({ kind: "retry", retryAfterMs: null, network: true }),
        ),
      };
    } catch {
      // No keepalive here (or the call itself was refused): the browser's own beacon, blind.
      return { sent: this.env.sendBeacon?.(url, body) ?? false };
    }
  }

  private async read(response: Response, count: number): Promise<Outcome> {
    const status = response.status;
    if (status === 202) return { kind: "done", accepted: range(count), rejected: new Map() };
    if (RETRYABLE_STATUSES.has(status)) {
      return {
        kind: "retry",
        retryAfterMs: parseRetryAfter(response.headers.get("Retry-After"), this.env.now()),
        network: false,
        status,
      };
    }
    if (status === 413 && count > 1) return { kind: "split" };
    if (status === 207 || status === 422) {
      const body = (await response.json().catch(() => null)) as ErrorPublic | null;
      const outcome = status === 207 ? partial(body, count) : wholeRequestRefused(body, count);
      if (outcome) return outcome;
      // A 207 whose body cannot be read: nothing says which were stored, and a resend is safe.
      if (status === 207) return { kind: "retry", retryAfterMs: null, network: false, status };
    }
    return { kind: "refused", status };
  }
}

/** A 207's `results`: each event accepted or rejected with its errors. */
function partial(body: ErrorPublic | null, count: number): Outcome | null {
  if (!Array.isArray(body?.results)) return null;
  const accepted = [];
  const rejected = new Map<number, EventError[]>();
  for (const result of body.results) {
    if (!Number.isInteger(result.index) || result.index < 0 || result.index >= count) return null;
    if (result.status === "accepted") accepted.push(result.index);
    else rejected.set(result.index, (result.errors ?? []).map(errorOf));
  }
  return { kind: "done", accepted, rejected };
}

/**
 * A 422 of an API without partial acceptance: nothing was stored. The events its errors name
 * are rejected; the others go again at once. Errors of the body itself (no index) refuse it all.
 */
function wholeRequestRefused(body: ErrorPublic | null, count: number): Outcome | null {
  const errors = body?.errors;
  if (!Array.isArray(errors) || errors.length === 0) return null;
  const rejected = new Map<number, EventError[]>();
  for (const error of errors) {
    const index = error.index;
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= count) return null;
    rejected.set(index, [...(rejected.get(index) ?? []), errorOf(error)]);
  }
  return { kind: "done", accepted: [], rejected };
}

function errorOf(error: EventError): EventError {
  return { path: error.path, type: error.type, message: error.message };
}

function range(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i);
}
