/** Unsent events across reloads and between tabs: IndexedDB, localStorage, and who sends what. */

import assert from "node:assert/strict";
import { test } from "node:test";
import { LocalStorageStore, MemoryStore, openStore } from "../src/store.js";
import { ADOPT_EVERY_MS } from "../src/queue.js";
import { ORPHAN_AFTER_MS } from "../src/tabs.js";
import { Origin, rating, settle } from "./helpers.js";

const HOUR = 3_600_000;

/** Records `count` events on a page that cannot send them yet (the interval is an hour). */
async function unsent(origin: Origin, storage: "indexeddb" | "localstorage", count: number) {
  const page = origin.tracker({ storage, flushIntervalMs: HOUR });
  const ids = Array.from({ length: count }, (_, n) => page.rating(rating(n))!);
  await settle();
  return { page, ids };
}

for (const storage of ["indexeddb", "localstorage"] as const) {
  test(`${storage}: events unsent when the page closed are sent by the next page, with their ids`, async () => {
    const origin = new Origin();
    const { page, ids } = await unsent(origin, storage, 3);
    await page.close();
    assert.equal(origin.api.sent.length, 0);

    const next = origin.tracker({ storage, flushIntervalMs: HOUR });
    await settle();
    assert.deepEqual(origin.api.ids(), ids);
    assert.equal(next.pending, 0);

    // Sent means deleted: a third page finds nothing.
    origin.tracker({ storage });
    await settle();
    assert.equal(origin.api.sent.length, 1);
  });

  test(`${storage}: two open tabs each send only their own events, never the other's`, async () => {
    const origin = new Origin();
    const { page: first, ids: firstIds } = await unsent(origin, storage, 2);
    const second = origin.tracker({ storage, flushIntervalMs: HOUR });
    await settle();
    const secondIds = [second.rating(rating(10))!];
    await origin.clock.advance(ADOPT_EVERY_MS * 3);
    await second.flush();
    assert.deepEqual(origin.api.ids(), secondIds, "the live first tab's events stay its own");
    await first.flush();
    assert.deepEqual(origin.api.ids(), [...secondIds, ...firstIds]);
  });

  test(`${storage}: a tab that crashed leaves its events to an open tab, which sends them once`, async () => {
    const origin = new Origin();
    // A page whose timers never fire, whose lock the browser frees when it crashes.
    const crashed = origin.tracker(
      { storage, flushIntervalMs: HOUR },
      { setTimeout: () => 0, clearTimeout: () => {}, randomUUID: uuids("crashed") },
    );
    await settle();
    const ids = [crashed.rating(rating(1))!, crashed.rating(rating(2))!];
    const survivor = origin.tracker({ storage, flushIntervalMs: HOUR });
    await settle();
    await origin.clock.advance(ADOPT_EVERY_MS);
    assert.equal(origin.api.sent.length, 0, "the crashed page's lock is still held");
    origin.locks!.drop("feedback-flywheel-page crashed-0");
    await origin.clock.advance(ADOPT_EVERY_MS);
    assert.deepEqual(origin.api.ids(), ids);
    assert.equal(survivor.pending, 0);
    await origin.clock.advance(ADOPT_EVERY_MS * 3);
    assert.equal(origin.api.ids().length, 2, "sent once");
  });
}

/** Ids `<prefix>-0` (the page's own), then real UUIDs (its events'). */
function uuids(prefix: string): () => string {
  let calls = 0;
  return () => (calls++ === 0 ? `${prefix}-0` : crypto.randomUUID());
}

test("two pages adopting a closed page's events at the same moment share them: each sent once", async () => {
  const origin = new Origin();
  const { page, ids } = await unsent(origin, "indexeddb", 20);
  await page.close();
  const pages = [0, 1, 2].map(() => origin.tracker({ storage: "indexeddb", flushIntervalMs: HOUR }));
  await settle(60);
  await Promise.all(pages.map((p) => p.flush()));
  assert.deepEqual(origin.api.ids().sort(), [...ids].sort());
});

test("without Web Locks, another page's event is taken over only after it waited 5 minutes", async () => {
  const origin = new Origin({ locks: false });
  const { ids } = await unsent(origin, "indexeddb", 1);
  origin.tracker({ storage: "indexeddb", flushIntervalMs: HOUR });
  await settle();
  assert.equal(origin.api.sent.length, 0, "the first page may still be open");
  await origin.clock.advance(ORPHAN_AFTER_MS + ADOPT_EVERY_MS);
  assert.deepEqual(origin.api.ids().slice(0, 1), ids);
});

test("a failed send is stored with its backoff and attempts, so the next page keeps them", async () => {
  const origin = new Origin();
  origin.api.answers.push(() => new Response("", { status: 503, headers: { "Retry-After": "120" } }));
  const page = origin.tracker({ storage: "localstorage" });
  const id = page.rating(rating(1))!;
  await page.flush();
  await page.close();
  const stored = JSON.parse(
    origin.localStorage.getItem(`feedback-flywheel https://flywheel.example.com:${id}`)!,
  );
  assert.equal(stored.attempts, 1);
  assert.equal(stored.notBefore, origin.clock.now() + 120_000);
  origin.tracker({ storage: "localstorage" });
  await settle();
  assert.equal(origin.api.sent.length, 1, "the next page honours the wait too");
  await origin.clock.advance(120_000);
  assert.deepEqual(origin.api.ids(), [id, id]);
});

test("auto: IndexedDB first, localStorage where IndexedDB is refused, memory where neither works", async () => {
  const origin = new Origin();
  const idb = await openStore("auto", "t", {
    indexedDB: origin.indexedDB!,
    localStorage: origin.localStorage,
  });
  assert.equal(idb.constructor.name, "IndexedDbStore");
  const refusing = {
    open: () => {
      throw new DOMException("private window", "InvalidStateError");
    },
  } as unknown as IDBFactory;
  const local = await openStore("auto", "t", { indexedDB: refusing, localStorage: origin.localStorage });
  assert.ok(local instanceof LocalStorageStore);
  const full = Object.assign(origin.localStorage, {
    setItem: () => {
      throw new DOMException("full", "QuotaExceededError");
    },
  });
  assert.ok(
    (await openStore("auto", "t", { indexedDB: refusing, localStorage: full })) instanceof MemoryStore,
  );
  assert.ok((await openStore("auto", "t", {})) instanceof MemoryStore);
});

test("storage that refuses writes still lets the page send its events", async () => {
  const origin = new Origin({ indexedDB: false });
  const page = origin.tracker({ storage: "localstorage" });
  await settle();
  origin.localStorage.setItem = () => {
    throw new DOMException("full", "QuotaExceededError");
  };
  const id = page.rating(rating(1));
  await page.flush();
  assert.deepEqual(origin.api.ids(), [id]);
});
