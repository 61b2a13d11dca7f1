/** The browser bundle: one self-contained ES module under 10 KB gzipped that works as it is. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { gzipSync } from "node:zlib";

const BUNDLE = new URL("../../dist/tracker.min.js", import.meta.url);

test("the bundle is under 10 KB minified and gzipped", () => {
  const size = gzipSync(readFileSync(BUNDLE), { level: 9 }).length;
  assert.ok(size < 10 * 1024, `${size} bytes gzipped`);
});

test("the bundle imports nothing: a plain <script type=module> can load it", () => {
  const code = readFileSync(BUNDLE, "utf8");
  assert.doesNotMatch(code, /\bimport\s*[\s{*"'(]/);
});

test("the bundle's createTracker records and sends through the runtime's fetch", async () => {
  const { createTracker, ATTRIBUTES } = await import(BUNDLE.href);
  assert.equal(ATTRIBUTES.response, "data-flywheel-response");
  const sent: { url: string; body: { events: { type: string }[] } }[] = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (url, init) => {
    sent.push({ url: String(url), body: JSON.parse(String(init?.body)) });
    return new Response("{}", { status: 202 });
  };
  try {
    const tracker = createTracker({
      endpoint: "http://127.0.0.1:9",
      key: "pk_test",
      app: { name: "web", version: "1" },
      userId: "u",
      consent: { training: true },
    });
    tracker.rating({ response_id: "r", conversation_id: "c", value: "up" });
    await tracker.flush();
    await tracker.close();
  } finally {
    globalThis.fetch = realFetch;
  }
  assert.equal(sent[0]!.url, "http://127.0.0.1:9/v1/events?partial=true");
  assert.equal(sent[0]!.body.events[0]!.type, "rating");
});

test("createTracker refuses options it cannot work without", async () => {
  const { createTracker } = await import(BUNDLE.href);
  assert.throws(() => createTracker({ key: "k", app: { name: "a", version: "1" } }), /endpoint is required/);
  assert.throws(() => createTracker({ endpoint: "http://x", key: "k" }), /app/);
});
