/**
 * When to send again: the protocol's retryable answers, `Retry-After`, and exponential backoff
 * with full jitter (base 1 s, cap 60 s), as AWS's "Exponential Backoff and Jitter" describes.
 */

/** Answers worth retrying: the request may succeed later unchanged. Network errors are too. */
export const RETRYABLE_STATUSES: ReadonlySet<number> = new Set([408, 429, 500, 502, 503, 504]);

/** The first backoff step, in milliseconds. */
export const BACKOFF_BASE_MS = 1000;

/** The longest backoff, in milliseconds. */
export const BACKOFF_CAP_MS = 60_000;

/**
 * Milliseconds a `Retry-After` header asks to wait: whole seconds, or an HTTP date. `null` when
 * there is none or it cannot be read (a browser hides it unless the API exposes it to CORS).
 */
export function parseRetryAfter(value: string | null, now: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

/**
 * The wait before the next try after `failures` consecutive failures (1 for the first): the
 * server's `Retry-After` when it gave one, else a uniformly random delay below
 * `min(cap, base * 2^(failures - 1))`, so many clients that failed together do not retry together.
 */
export function retryDelay(failures: number, retryAfterMs: number | null, random: () => number): number {
  if (retryAfterMs !== null) return retryAfterMs;
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, failures - 1));
  return Math.floor(random() * ceiling);
}
