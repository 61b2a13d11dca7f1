/** Consent: without `{training: true}` nothing is recorded, stored or sent. */

import assert from "node:assert/strict";
import { test } from "node:test";
import type { DroppedEvents } from "../src/types.js";
import { Origin, rating, settle } from "./helpers.js";

for (const consent of [undefined, null, { training: false }]) {
  test(`consent ${JSON.stringify(consent)}: nothing is recorded, stored or sent`, async () => {
    const origin = new Origin();
    const tracker = origin.tracker({ consent, storage: "localstorage" });
    assert.equal(tracker.rating(rating(1)), null);
    assert.equal(tracker.copy({ response_id: "r", conversation_id: "c", text: "t" }), null);
    await tracker.flush();
    await origin.clock.advance(600_000);
    assert.equal(origin.api.sent.length, 0);
    assert.equal(tracker.pending, 0);
    assert.equal(origin.localStorage.length, 0);
  });
}

test("consent given later: events from then on are sent, carrying it", async () => {
  const origin = new Origin();
  const tracker = origin.tracker({ consent: undefined });
  tracker.rating(rating(1));
  await tracker.setConsent({ training: true, policy_version: "v9" });
  const id = tracker.rating(rating(2));
  await tracker.flush();
  assert.deepEqual(origin.api.ids(), [id]);
  assert.deepEqual(origin.api.sent[0]!.events[0]!.consent, { training: true, policy_version: "v9" });
});

test("consent withdrawn: unsent events are deleted from storage and reported, and nothing more is sent", async () => {
  const origin = new Origin();
  const dropped: DroppedEvents[] = [];
  const tracker = origin.tracker({
    storage: "localstorage",
    flushIntervalMs: 60_000,
    onError: (d) => dropped.push(d),
  });
  const ids = [tracker.rating(rating(1)), tracker.rating(rating(2))];
  await settle();
  assert.equal(origin.localStorage.length, 2);
  await tracker.setConsent({ training: false });
  assert.equal(origin.localStorage.length, 0);
  assert.equal(tracker.pending, 0);
  assert.deepEqual(dropped, [
    { reason: "consent_withdrawn", events: ids.map((id) => ({ event_id: id, type: "rating" })) },
  ]);
  assert.equal(tracker.rating(rating(3)), null);
  await origin.clock.advance(600_000);
  assert.equal(origin.api.sent.length, 0);
});

test("without a user id nothing is recorded", async () => {
  const origin = new Origin();
  const tracker = origin.tracker({ userId: undefined });
  assert.equal(tracker.rating(rating(1)), null);
  tracker.setUser("user-9");
  assert.ok(tracker.rating(rating(1)));
  await tracker.flush();
  assert.equal(origin.api.sent[0]!.events[0]!.user_id, "user-9");
});

test("a page without consent leaves closed pages' events alone", async () => {
  const origin = new Origin();
  const first = origin.tracker({ storage: "indexeddb", flushIntervalMs: 60_000 });
  await settle();
  first.rating(rating(1));
  await first.close();
  origin.tracker({ storage: "indexeddb", consent: null });
  await origin.clock.advance(120_000);
  assert.equal(origin.api.sent.length, 0);
});
