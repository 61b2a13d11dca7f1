/** Batching, answers, retries and limits, through the tracker's public methods. */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { DroppedEvents } from "../src/types.js";
import { json, Origin, partly, rating, settle } from "./helpers.js";

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function page(options: Parameters<Origin["tracker"]>[0] = {}) {
  const origin = new Origin();
  const dropped: DroppedEvents[] = [];
  const tracker = origin.tracker({ onError: (d) => dropped.push(d), ...options });
  return { origin, api: origin.api, clock: origin.clock, tracker, dropped };
}

test("events are sent once flushAt of them wait, in one request", async () => {
  const { api, tracker } = page({ flushAt: 3 });
  tracker.rating(rating(1));
  tracker.rating(rating(2));
  await settle();
  assert.equal(api.sent.length, 0);
  tracker.rating(rating(3));
  await settle();
  assert.equal(api.sent.length, 1);
  assert.deepEqual(
    api.sent[0]!.events.map((event) => (event as { response_id?: string }).response_id),
    ["r-1", "r-2", "r-3"],
  );
  assert.equal(tracker.pending, 0);
});

test("an event waits at most flushIntervalMs", async () => {
  const { api, clock, tracker } = page({ flushIntervalMs: 5000 });
  tracker.rating(rating(1));
  await clock.advance(4999);
  assert.equal(api.sent.length, 0);
  await clock.advance(1);
  assert.equal(api.sent.length, 1);
});

test("each event gets a fresh UUIDv4, the time, the user, the app, the consent and the contract version", async () => {
  const { api, tracker } = page();
  const first = tracker.rating(rating(1));
  const second = tracker.copy({
    response_id: "r-1",
    conversation_id: "c-1",
    text: "x = 1",
    code_block: true,
  });
  await tracker.flush();
  assert.match(first!, UUID4);
  assert.match(second!, UUID4);
  assert.notEqual(first, second);
  assert.deepEqual(api.sent[0]!.events[0], {
    response_id: "r-1",
    conversation_id: "c-1",
    value: "up",
    event_id: first,
    type: "rating",
    occurred_at: "2026-03-01T12:00:00.000Z",
    user_id: "user-1",
    app: { name: "web", version: "1.4.0" },
    consent: { training: true, policy_version: "2026-01" },
    schema_version: 1,
  });
  assert.equal(api.sent[0]!.events[1]!.type, "copy");
});

test("every helper sends its event type with the contract's field names", async () => {
  const { api, tracker } = page();
  tracker.copy({ response_id: "r-1", conversation_id: "c", span: { start: 0, end: 4 } });
  tracker.edit({ response_id: "r-1", conversation_id: "c", edited_text: "better" });
  tracker.regenerate({ response_id: "r-1", conversation_id: "c", new_response_id: "r-2" });
  tracker.abChoice({ response_a_id: "r-1", response_b_id: "r-2", conversation_id: "c", choice: "both_bad" });
  tracker.rating({ response_id: "r-2", conversation_id: "c", value: "down", reason: "wrong" });
  tracker.generation({
    response_id: "r-3",
    parent_id: "m-1",
    conversation_id: "c",
    prompt: [{ role: "user", content: "hi" }],
    response: "hello",
    model: { id: "chat-small" },
  });
  await tracker.flush();
  const events = api.sent[0]!.events as unknown as Record<string, unknown>[];
  assert.deepEqual(
    events.map((event) => event.type),
    ["copy", "edit", "regenerate", "ab_choice", "rating", "generation"],
  );
  assert.deepEqual(events[0]!.span, { start: 0, end: 4 });
  assert.equal(events[1]!.edited_text, "better");
  assert.equal(events[2]!.new_response_id, "r-2");
  assert.equal(events[3]!.choice, "both_bad");
  assert.equal(events[4]!.reason, "wrong");
  assert.deepEqual(events[5]!.model, { id: "chat-small" });
});

test("metadata: the tracker's and the event's, the event's winning key by key; none without either", async () => {
  const { api, tracker } = page({ metadata: { experiment: "exp-7", prompt_version: "v2" } });
  tracker.rating({
    ...rating(1),
    metadata: { prompt_version: "v3", temperature: 0.2, cached: false, note: null },
  });
  await tracker.flush();
  assert.deepEqual(api.sent[0]!.events[0]!.metadata, {
    experiment: "exp-7",
    prompt_version: "v3",
    temperature: 0.2,
    cached: false,
    note: null,
  });
  const bare = page();
  bare.tracker.rating(rating(1));
  await bare.tracker.flush();
  assert.equal("metadata" in bare.api.sent[0]!.events[0]!, false);
});

test("a 207 drops and reports the rejected events, keeps none of them, and the queue goes on", async () => {
  const { api, tracker, dropped } = page();
  api.answers.push(partly([1]));
  const ids = [1, 2, 3].map((n) => tracker.rating(rating(n)));
  await tracker.flush();
  assert.equal(tracker.pending, 0);
  assert.deepEqual(dropped, [
    {
      reason: "rejected",
      events: [
        {
          event_id: ids[1],
          type: "rating",
          errors: [{ path: "value", type: "literal_error", message: "Input should be 'up' or 'down'" }],
        },
      ],
    },
  ]);
  tracker.rating(rating(4));
  await tracker.flush();
  assert.equal(api.sent.length, 2);
  assert.deepEqual(
    api.sent[1]!.events.map((event) => (event as { response_id?: string }).response_id),
    ["r-4"],
  );
});

test("a 422 from an API without partial acceptance: the named event is dropped, the others resent at once", async () => {
  const { api, tracker, dropped } = page();
  api.answers.push(() =>
    json(422, { errors: [{ index: 0, path: "value", type: "literal_error", message: "m" }] }),
  );
  const ids = [1, 2].map((n) => tracker.rating(rating(n)));
  await tracker.flush();
  assert.deepEqual(api.ids(), [ids[0], ids[1], ids[1]]);
  assert.equal(dropped[0]!.events[0]!.event_id, ids[0]);
  assert.equal(tracker.pending, 0);
});

test("429 with Retry-After: the same events, not a moment before", async () => {
  const { api, clock, tracker, dropped } = page();
  api.answers.push(() => json(429, { error: "rate_limited" }, { "Retry-After": "3" }));
  const id = tracker.rating(rating(1));
  await tracker.flush();
  tracker.rating(rating(2));
  await tracker.flush();
  assert.equal(api.sent.length, 1, "the queue waits, new events too");
  await clock.advance(2999);
  assert.equal(api.sent.length, 1);
  await clock.advance(1);
  assert.equal(api.sent.length, 2);
  assert.equal(api.sent[1]!.at - api.sent[0]!.at, 3000);
  assert.deepEqual(api.sent[1]!.events.map((event) => event.event_id)[0], id);
  assert.equal(api.sent[1]!.events.length, 2);
  assert.deepEqual(dropped, []);
});

test("503 without Retry-After: exponential backoff with jitter, then success", async () => {
  const { api, clock, tracker } = page();
  api.answers.push(
    () => json(503, {}),
    () => json(503, {}),
  );
  tracker.rating(rating(1));
  await tracker.flush();
  // random() is 0.5: half of 1 s, then half of 2 s.
  await clock.advance(499);
  assert.equal(api.sent.length, 1);
  await clock.advance(1);
  assert.equal(api.sent.length, 2);
  await clock.advance(999);
  assert.equal(api.sent.length, 2);
  await clock.advance(1);
  assert.equal(api.sent.length, 3);
  assert.equal(tracker.pending, 0);
  assert.equal(new Set(api.ids()).size, 1, "one event, resent with its id");
});

for (const status of [400, 401, 403, 415]) {
  test(`${status}: the events are dropped and reported, never retried`, async () => {
    const { api, clock, tracker, dropped } = page();
    api.answers.push(() => json(status, { error: "x", message: "no" }));
    tracker.rating(rating(1));
    await tracker.flush();
    await clock.advance(120_000);
    assert.equal(api.sent.length, 1);
    assert.equal(tracker.pending, 0);
    assert.equal(dropped[0]!.reason, "refused");
    assert.equal(dropped[0]!.status, status);
  });
}

test("maxRetries retryable answers, then the event is dropped and reported", async () => {
  const { api, clock, tracker, dropped } = page({ maxRetries: 2 });
  api.fallback = () => json(500, {});
  tracker.rating(rating(1));
  await tracker.flush();
  await clock.advance(600_000);
  assert.equal(api.sent.length, 3);
  assert.equal(dropped[0]!.reason, "retries_exhausted");
  assert.equal(dropped[0]!.status, 500);
  assert.equal(tracker.pending, 0);
});

test("network errors (offline, the API unreachable) never drop an event", async () => {
  const { api, clock, tracker, dropped } = page({ maxRetries: 1 });
  api.fallback = () => "network-error";
  tracker.rating(rating(1));
  await tracker.flush();
  await clock.advance(600_000);
  assert.ok(api.sent.length >= 5);
  assert.deepEqual(dropped, []);
  assert.equal(tracker.pending, 1);
});

test("the online event sends at once, whatever the backoff said", async () => {
  const window = new EventTarget();
  const document = Object.assign(new EventTarget(), { visibilityState: "visible" }) as unknown as Document;
  const origin = new Origin();
  const tracker = origin.tracker({}, { window, document });
  origin.api.answers.push(() => "network-error");
  tracker.rating(rating(1));
  await tracker.flush();
  assert.equal(origin.api.sent.length, 1);
  window.dispatchEvent(new Event("online"));
  await settle();
  assert.equal(origin.api.sent.length, 2);
  assert.equal(tracker.pending, 0);
});

test("413 halves the batch until it fits", async () => {
  const { api, tracker } = page();
  api.answers.push(() => json(413, {}));
  for (let n = 0; n < 4; n++) tracker.rating(rating(n));
  await tracker.flush();
  assert.deepEqual(
    api.sent.map((request) => request.events.length),
    [4, 2, 2],
  );
  assert.equal(tracker.pending, 0);
});

test("a request carries at most 500 events", async () => {
  const { api, tracker } = page({ maxQueueSize: 2000, flushAt: 10_000 });
  for (let n = 0; n < 1200; n++) tracker.rating(rating(n));
  await tracker.flush();
  assert.deepEqual(
    api.sent.map((request) => request.events.length),
    [500, 500, 200],
  );
});

test("an event over 64 KiB is refused at once, with a reason", async () => {
  const { tracker, dropped } = page();
  const id = tracker.edit({ response_id: "r-1", conversation_id: "c", edited_text: "x".repeat(70_000) });
  assert.equal(id, null);
  assert.equal(dropped[0]!.reason, "too_large");
  assert.equal(tracker.pending, 0);
});

test("beyond maxQueueSize new events are dropped and reported", async () => {
  const { tracker, dropped } = page({ maxQueueSize: 2 });
  tracker.rating(rating(1));
  tracker.rating(rating(2));
  assert.equal(tracker.rating(rating(3)), null);
  assert.equal(dropped[0]!.reason, "queue_full");
  assert.equal(tracker.pending, 2);
});

test("onError never sees an event's text", async () => {
  const { api, tracker, dropped } = page();
  api.answers.push(() => json(400, { error: "bad_request" }));
  tracker.edit({ response_id: "r-1", conversation_id: "c", edited_text: "my secret draft" });
  await tracker.flush();
  assert.equal(JSON.stringify(dropped).includes("secret"), false);
  assert.deepEqual(Object.keys(dropped[0]!.events[0]!), ["event_id", "type"]);
});
