/** The last send of a page that is hidden or closed: keepalive fetch or sendBeacon, 64 KiB. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { BEACON_LEASE_MS, BEACON_MAX_BYTES } from "../src/queue.js";
import { json, Origin, rating, settle } from "./helpers.js";

const HOUR = 3_600_000;

function browserPage(origin = new Origin(), extra = {}) {
  const window = new EventTarget();
  const document = Object.assign(new EventTarget(), { visibilityState: "visible" });
  const tracker = origin.tracker(
    { flushIntervalMs: HOUR },
    { window, document: document as unknown as Document, ...extra },
  );
  const hide = () => {
    document.visibilityState = "hidden";
    document.dispatchEvent(new Event("visibilitychange"));
  };
  return { origin, api: origin.api, tracker, window, document, hide };
}

test("hidden: waiting events go at once to /v1/beacon with keepalive, and leave the queue on 202", async () => {
  const { api, tracker, hide } = browserPage();
  const ids = [tracker.rating(rating(1)), tracker.rating(rating(2))];
  hide();
  assert.equal(api.sent.length, 1, "sent before the listener returned");
  const [request] = api.sent;
  assert.equal(request!.keepalive, true);
  assert.equal(request!.url.pathname, "/v1/beacon");
  assert.equal(request!.url.searchParams.get("key"), "pk_live_test");
  assert.equal(request!.url.searchParams.get("partial"), "true");
  assert.deepEqual(api.ids(), ids);
  await settle();
  assert.equal(tracker.pending, 0);
});

test("visibilitychange then pagehide: one send, not two", async () => {
  const { api, tracker, window, hide } = browserPage();
  tracker.rating(rating(1));
  hide();
  window.dispatchEvent(new Event("pagehide"));
  await settle();
  window.dispatchEvent(new Event("pagehide"));
  assert.equal(api.sent.length, 1);
});

test("pagehide alone sends too", () => {
  const { api, tracker, window } = browserPage();
  tracker.rating(rating(1));
  window.dispatchEvent(new Event("pagehide"));
  assert.equal(api.sent.length, 1);
});

test("a visible page's visibilitychange sends nothing", () => {
  const { api, tracker, document } = browserPage();
  tracker.rating(rating(1));
  document.dispatchEvent(new Event("visibilitychange"));
  assert.equal(api.sent.length, 0);
});

test("the beacon carries what fits in 60 KiB; the rest stays stored for later", async () => {
  const { api, tracker, hide } = browserPage();
  const text = "x".repeat(25_000);
  for (let n = 0; n < 5; n++)
    tracker.edit({ response_id: `r-${n}`, conversation_id: "c", edited_text: text });
  hide();
  assert.ok(api.sent[0]!.body.length <= BEACON_MAX_BYTES);
  assert.equal(api.sent[0]!.events.length, 2);
  await settle();
  assert.equal(tracker.pending, 3);
});

test("where keepalive fetch throws, sendBeacon takes the events; if the page lives on they go again later", async () => {
  const origin = new Origin();
  const fetch = origin.api.fetch;
  let keepaliveWorks = false;
  const { tracker, hide } = browserPage(origin, {
    fetch: (url: string, init?: RequestInit) => {
      if (init?.keepalive && !keepaliveWorks) throw new TypeError("keepalive unsupported");
      return fetch(url, init);
    },
  });
  const id = tracker.rating(rating(1));
  hide();
  assert.equal(origin.beacons.length, 1);
  assert.deepEqual(
    JSON.parse(origin.beacons[0]!.body).events.map((e: { event_id: string }) => e.event_id),
    [id],
  );
  // The answer is never seen: the event stays stored, and the page, still alive, resends it.
  keepaliveWorks = true;
  await origin.clock.advance(BEACON_LEASE_MS - 1);
  assert.equal(origin.api.sent.length, 0);
  await origin.clock.advance(1);
  assert.deepEqual(origin.api.ids(), [id]);
});

test("during a Retry-After wait the hidden page sends nothing; the events stay stored", async () => {
  const { api, tracker, hide } = browserPage();
  api.answers.push(() => json(429, {}, { "Retry-After": "30" }));
  tracker.rating(rating(1));
  await tracker.flush();
  hide();
  assert.equal(api.sent.length, 1);
  assert.equal(tracker.pending, 1);
});

test("a rejected event in the beacon's answer is dropped and reported like any other", async () => {
  const origin = new Origin();
  const dropped: unknown[] = [];
  const window = new EventTarget();
  const document = Object.assign(new EventTarget(), { visibilityState: "hidden" }) as unknown as Document;
  const tracker = origin.tracker(
    { flushIntervalMs: HOUR, onError: (d) => dropped.push(d) },
    { window, document },
  );
  origin.api.answers.push((request) =>
    json(207, {
      accepted: 0,
      rejected: 1,
      results: [
        {
          index: 0,
          status: "rejected",
          errors: [{ path: "type", type: "event_type_not_allowed", message: "m" }],
        },
      ],
      event_ids: [],
      request: request.url.href,
    }),
  );
  tracker.generation({
    response_id: "r",
    parent_id: "m",
    conversation_id: "c",
    prompt: [{ role: "user", content: "q" }],
    response: "a",
    model: { id: "m" },
  });
  window.dispatchEvent(new Event("pagehide"));
  await settle();
  assert.equal(tracker.pending, 0);
  assert.equal((dropped[0] as { reason: string }).reason, "rejected");
});
