import assert from "node:assert/strict";
import { test } from "node:test";
import { gunzipSync } from "node:zlib";
import { REQUEST_TIMEOUT_MS, Transport } from "../src/transport.js";
import type { TrackedEvent } from "../src/types.js";
import { FakeApi, FakeClock, json, partly } from "./helpers.js";

function events(count: number): TrackedEvent[] {
  return Array.from({ length: count }, (_, i) => ({
    event_id: crypto.randomUUID(),
    type: "rating",
    occurred_at: "2026-03-01T12:00:00.000Z",
    user_id: "user-1",
    conversation_id: "c-1",
    app: { name: "web", version: "1" },
    schema_version: 1,
    response_id: `r-${i}`,
    value: "up",
  }));
}

function setup(compress = false) {
  const clock = new FakeClock();
  const api = new FakeApi(clock);
  const beacons: string[] = [];
  const env = {
    fetch: api.fetch,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    sendBeacon: (url: string) => beacons.push(url) > 0,
  };
  return { api, beacons, env, transport: new Transport("https://api.example.com/", "pk_1", env, compress) };
}

test("a send posts the batch to /v1/events with partial acceptance and the Bearer key", async () => {
  const { api, transport } = setup();
  const batch = events(2);
  assert.deepEqual(await transport.send(batch), { kind: "done", accepted: [0, 1], rejected: new Map() });
  const [request] = api.sent;
  assert.equal(request!.url.href, "https://api.example.com/v1/events?partial=true");
  assert.equal(request!.headers.get("authorization"), "Bearer pk_1");
  assert.equal(request!.headers.get("content-type"), "application/json");
  assert.deepEqual(request!.events, batch);
});

test("a 207 names the accepted and the rejected events with their errors", async () => {
  const { api, transport } = setup();
  api.answers.push(partly([1]));
  const outcome = await transport.send(events(3));
  assert.equal(outcome.kind, "done");
  assert.ok(outcome.kind === "done");
  assert.deepEqual(outcome.accepted, [0, 2]);
  assert.deepEqual([...outcome.rejected.keys()], [1]);
  assert.equal(outcome.rejected.get(1)![0]!.path, "value");
});

test("a 422 without partial acceptance rejects the events it names and stores none", async () => {
  const { api, transport } = setup();
  api.answers.push(() =>
    json(422, {
      error: "invalid_events",
      errors: [{ index: 2, path: "value", type: "literal_error", message: "m" }],
    }),
  );
  const outcome = await transport.send(events(3));
  assert.ok(outcome.kind === "done");
  assert.deepEqual(outcome.accepted, []);
  assert.deepEqual([...outcome.rejected.keys()], [2]);
});

test("a 422 about the body itself refuses the whole request", async () => {
  const { api, transport } = setup();
  api.answers.push(() =>
    json(422, { errors: [{ index: null, path: "events", type: "too_long", message: "m" }] }),
  );
  assert.deepEqual(await transport.send(events(2)), { kind: "refused", status: 422 });
});

for (const status of [408, 429, 500, 502, 503, 504]) {
  test(`${status} is retried, after Retry-After when given`, async () => {
    const { api, transport } = setup();
    api.answers.push(
      () => json(status, {}, { "Retry-After": "7" }),
      () => json(status, {}),
    );
    assert.deepEqual(await transport.send(events(1)), {
      kind: "retry",
      retryAfterMs: 7000,
      network: false,
      status,
    });
    assert.deepEqual(await transport.send(events(1)), {
      kind: "retry",
      retryAfterMs: null,
      network: false,
      status,
    });
  });
}

for (const status of [400, 401, 403, 404, 415, 501]) {
  test(`${status} refuses the request: not retried`, async () => {
    const { api, transport } = setup();
    api.answers.push(() => json(status, { error: "x" }));
    assert.deepEqual(await transport.send(events(2)), { kind: "refused", status });
  });
}

test("413 splits a batch, and refuses a single event", async () => {
  const { api, transport } = setup();
  api.answers.push(
    () => json(413, {}),
    () => json(413, {}),
  );
  assert.deepEqual(await transport.send(events(2)), { kind: "split" });
  assert.deepEqual(await transport.send(events(1)), { kind: "refused", status: 413 });
});

test("a network error is retried", async () => {
  const { api, transport } = setup();
  api.answers.push(() => "network-error");
  assert.deepEqual(await transport.send(events(1)), { kind: "retry", retryAfterMs: null, network: true });
});

test("a 207 whose body cannot be read is sent again (ids make the resend safe)", async () => {
  const { api, transport } = setup();
  api.answers.push(() => new Response("not json", { status: 207 }));
  assert.deepEqual(await transport.send(events(1)), {
    kind: "retry",
    retryAfterMs: null,
    network: false,
    status: 207,
  });
});

test("the beacon goes to /v1/beacon with the key in the URL, as text/plain, keepalive", async () => {
  const { api, transport } = setup();
  const batch = events(2);
  const { sent, pending } = transport.beacon(batch);
  assert.equal(sent, true);
  assert.deepEqual(await pending, { kind: "done", accepted: [0, 1], rejected: new Map() });
  const [request] = api.sent;
  assert.equal(request!.url.href, "https://api.example.com/v1/beacon?key=pk_1&partial=true");
  assert.equal(request!.keepalive, true);
  assert.equal(request!.headers.get("authorization"), null);
  assert.equal(request!.headers.get("content-type"), null, "a string body goes as text/plain: no preflight");
  assert.deepEqual(JSON.parse(request!.body), { events: batch });
});

test("without keepalive fetch the beacon falls back to navigator.sendBeacon", () => {
  const { beacons, env } = setup();
  const transport = new Transport("https://api.example.com", "pk_1", {
    ...env,
    fetch: () => {
      throw new TypeError("keepalive not supported");
    },
  });
  assert.deepEqual(transport.beacon(events(1)), { sent: true });
  assert.deepEqual(beacons, ["https://api.example.com/v1/beacon?key=pk_1&partial=true"]);
});

test("compress gzips large bodies and says so", async () => {
  const { env } = setup();
  let seen: { headers: Headers; body: ArrayBuffer } | undefined;
  const transport = new Transport(
    "https://api.example.com",
    "pk_1",
    {
      ...env,
      fetch: async (_url, init) => {
        seen = { headers: new Headers(init?.headers), body: init?.body as ArrayBuffer };
        return json(202, {});
      },
    },
    true,
  );
  const batch = events(20);
  await transport.send(batch);
  assert.equal(seen!.headers.get("content-encoding"), "gzip");
  assert.deepEqual(JSON.parse(gunzipSync(Buffer.from(seen!.body)).toString()), { events: batch });
});

test("a request without an answer after 30 s is aborted and retried", async () => {
  const { env } = setup();
  const clock = new FakeClock();
  const transport = new Transport("https://api.example.com", "pk_1", {
    ...env,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    fetch: (_url, init) =>
      new Promise((_resolve, reject) =>
        init!.signal!.addEventListener("abort", () => reject(init!.signal!.reason)),
      ),
  });
  const outcome = transport.send(events(1));
  await clock.advance(REQUEST_TIMEOUT_MS - 1);
  let settled = false;
  void outcome.then(() => (settled = true));
  await clock.advance(0);
  assert.equal(settled, false);
  await clock.advance(1);
  assert.deepEqual(await outcome, { kind: "retry", retryAfterMs: null, network: true });
});
