// A backend using the tracker package (its built dist/) with a write key: records one event of
// each type and one the contract refuses, flushes, and prints what it sent and what was dropped.
//
//   node send_events.mjs <package dir> <API base URL> <write key>

const [packageDir, endpoint, key] = process.argv.slice(2);
const { createTracker } = await import(`${packageDir}/dist/index.js`);

const dropped = [];
const tracker = createTracker({
  endpoint,
  key,
  app: { name: "backend", version: "2.0.0" },
  userId: "user-17",
  consent: { training: true, policy_version: "2026-01" },
  onError: (event) => dropped.push(event),
});
const conversation_id = "conv-node-1";
const ids = [
  tracker.generation({
    response_id: "resp-1",
    parent_id: "msg-1",
    conversation_id,
    prompt: [{ role: "user", content: "How do I reverse a list?" }],
    response: "Use reversed(xs).",
    model: { id: "chat-small", version: "2026-09" },
  }),
  tracker.copy({ response_id: "resp-1", conversation_id, text: "reversed(xs)", span: { start: 4, end: 16 }, code_block: true }),
  tracker.edit({ response_id: "resp-1", conversation_id, edited_text: "Use xs[::-1]." }),
  tracker.regenerate({ response_id: "resp-1", conversation_id, new_response_id: "resp-2" }),
  tracker.abChoice({ response_a_id: "resp-1", response_b_id: "resp-2", conversation_id, choice: "b" }),
  tracker.rating({ response_id: "resp-2", conversation_id, value: "up" }),
];
const refused = tracker.rating({ response_id: "resp-2", conversation_id, value: "sideways" });
await tracker.flush();
await tracker.close();
console.log(JSON.stringify({ ids, refused, dropped, pending: tracker.pending }));
