import assert from "node:assert/strict";
import { test } from "node:test";
import { BACKOFF_CAP_MS, parseRetryAfter, RETRYABLE_STATUSES, retryDelay } from "../src/retry.js";

test("the protocol's retryable answers, and no other", () => {
  assert.deepEqual([...RETRYABLE_STATUSES].sort(), [408, 429, 500, 502, 503, 504]);
  for (const status of [400, 401, 403, 404, 413, 415, 422, 501, 505])
    assert.equal(RETRYABLE_STATUSES.has(status), false);
});

test("Retry-After in whole seconds or as an HTTP date", () => {
  const now = Date.parse("2026-03-01T12:00:00Z");
  assert.equal(parseRetryAfter("3", now), 3000);
  assert.equal(parseRetryAfter(" 0 ", now), 0);
  assert.equal(parseRetryAfter("Sun, 01 Mar 2026 12:00:07 GMT", now), 7000);
  assert.equal(parseRetryAfter("Sun, 01 Mar 2026 11:00:00 GMT", now), 0);
  assert.equal(parseRetryAfter("soon", now), null);
  assert.equal(parseRetryAfter(null, now), null);
});

test("the server's Retry-After wins over the backoff", () => {
  assert.equal(
    retryDelay(5, 3000, () => 0.99),
    3000,
  );
});

test("full jitter: uniform below base * 2^(failures - 1), capped at 60 s", () => {
  assert.equal(
    retryDelay(1, null, () => 0),
    0,
  );
  assert.equal(
    retryDelay(1, null, () => 0.5),
    500,
  );
  assert.equal(
    retryDelay(2, null, () => 0.5),
    1000,
  );
  assert.equal(
    retryDelay(4, null, () => 0.999),
    7992,
  );
  assert.equal(
    retryDelay(30, null, () => 0.999),
    Math.floor(0.999 * BACKOFF_CAP_MS),
  );
  assert.equal(BACKOFF_CAP_MS, 60_000);
});
