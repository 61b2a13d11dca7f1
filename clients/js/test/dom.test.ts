/** Auto-capture and the DOM hooks, on happy-dom's document. */

import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Window } from "happy-dom";
import type { TrackerOptions } from "../src/types.js";
import { Origin } from "./helpers.js";

const windows: Window[] = [];
after(async () => {
  for (const window of windows) await window.happyDOM.close();
});

const CHAT = `
<main data-flywheel-conversation="conv-7">
  <article data-flywheel-response="resp-42">
    <p id="prose">Héllo 😀 world, try this:</p>
    <pre id="code"><code>let x = 1;</code></pre>
    <button id="up" data-flywheel-rating="up"><span id="icon">👍</span></button>
    <button id="down" data-flywheel-rating="down">👎</button>
    <button id="again" data-flywheel-regenerate>Regenerate</button>
  </article>
  <section id="pair" data-flywheel-response-a="resp-1" data-flywheel-response-b="resp-2">
    <button id="a" data-flywheel-choice="a">A</button>
    <button id="both" data-flywheel-choice="both_bad">Both bad</button>
    <button id="nonsense" data-flywheel-choice="c">?</button>
  </section>
  <p id="outside">Not a response.</p>
</main>`;

function chat(autoCapture: TrackerOptions["autoCapture"] = true) {
  const window = new Window();
  windows.push(window);
  const document = window.document as unknown as Document;
  document.body.innerHTML = CHAT;
  const origin = new Origin();
  const tracker = origin.tracker({ autoCapture }, { window: window as unknown as EventTarget, document });
  const byId = (id: string) => document.getElementById(id)!;
  /** Selects `[start, end)` of the element's first text node and copies it. */
  const copy = (id: string, start: number, end: number, endId = id, endOffset = end) => {
    const range = document.createRange();
    range.setStart(
      byId(id).firstChild!.nodeName === "CODE" ? byId(id).firstChild!.firstChild! : byId(id).firstChild!,
      start,
    );
    const last = byId(endId).firstChild!;
    range.setEnd(last.nodeName === "CODE" ? last.firstChild! : last, endOffset);
    const selection = document.getSelection()!;
    selection.removeAllRanges();
    selection.addRange(range);
    document.dispatchEvent(new window.Event("copy", { bubbles: true }) as unknown as Event);
  };
  const click = (id: string) =>
    byId(id).dispatchEvent(new window.MouseEvent("click", { bubbles: true }) as unknown as Event);
  const events = async () => {
    await tracker.flush();
    return origin.api.sent.flatMap((request) => request.events) as unknown as Record<string, unknown>[];
  };
  const fire = (type: string) =>
    document.dispatchEvent(new window.Event(type, { bubbles: true }) as unknown as Event);
  return { tracker, document, byId, copy, click, fire, events };
}

test("copying prose reports the text, its span in code points and no code block", async () => {
  const { copy, events } = chat();
  copy("prose", 2, 9); // "llo 😀 " in UTF-16 units 2..9
  const [event] = await events();
  assert.equal(event!.type, "copy");
  assert.equal(event!.response_id, "resp-42");
  assert.equal(event!.conversation_id, "conv-7");
  assert.equal(event!.text, "llo 😀 ");
  assert.equal(event!.code_block, false);
  // The response's text starts with a newline and four spaces of indentation before <p>.
  const offset = "\n    ".length;
  assert.deepEqual(event!.span, { start: offset + 2, end: offset + 8 });
});

test("copying inside a code block says so", async () => {
  const { copy, events } = chat();
  copy("code", 4, 9);
  const [event] = await events();
  assert.equal(event!.text, "x = 1");
  assert.equal(event!.code_block, true);
});

test("a selection from prose into code is not a code block copy", async () => {
  const { copy, events } = chat();
  copy("prose", 0, 3, "code", 3);
  const [event] = await events();
  assert.equal(event!.code_block, false);
});

test("copies outside a response, and empty selections, record nothing", async () => {
  const { copy, events, document, fire } = chat();
  copy("outside", 0, 3);
  document.getSelection()!.removeAllRanges();
  fire("copy");
  assert.deepEqual(await events(), []);
});

test("without autoCapture no listener runs", async () => {
  const { copy, click, events } = chat(false);
  copy("prose", 0, 3);
  click("up");
  assert.deepEqual(await events(), []);
});

test("autoCapture can take copies only", async () => {
  const { copy, click, events } = chat({ copy: true });
  copy("prose", 0, 3);
  click("up");
  assert.deepEqual(
    (await events()).map((event) => event.type),
    ["copy"],
  );
});

test("rating and regenerate controls inside a response", async () => {
  const { click, events } = chat();
  click("icon"); // inside the button
  click("down");
  click("again");
  const sent = await events();
  assert.deepEqual(
    sent.map((event) => [event.type, event.response_id, event.conversation_id, event.value]),
    [
      ["rating", "resp-42", "conv-7", "up"],
      ["rating", "resp-42", "conv-7", "down"],
      ["regenerate", "resp-42", "conv-7", undefined],
    ],
  );
});

test("A/B choice controls; a value outside the contract is ignored", async () => {
  const { click, events } = chat();
  click("a");
  click("both");
  click("nonsense");
  const sent = await events();
  assert.deepEqual(
    sent.map((event) => [
      event.type,
      event.response_a_id,
      event.response_b_id,
      event.choice,
      event.conversation_id,
    ]),
    [
      ["ab_choice", "resp-1", "resp-2", "a", "conv-7"],
      ["ab_choice", "resp-1", "resp-2", "both_bad", "conv-7"],
    ],
  );
});

test("hooks for widgets: context, abContext and copyElement", async () => {
  const { tracker, byId, events } = chat(false);
  assert.deepEqual(tracker.context(byId("code")), { response_id: "resp-42", conversation_id: "conv-7" });
  assert.equal(tracker.context(byId("outside")), null);
  assert.deepEqual(tracker.abContext(byId("a")), {
    response_a_id: "resp-1",
    response_b_id: "resp-2",
    conversation_id: "conv-7",
  });
  tracker.edit({ ...tracker.context(byId("prose"))!, edited_text: "Hello world" });
  tracker.copyElement(byId("code"), undefined, { button: "code-copy" });
  const [edit, copy] = await events();
  assert.equal(edit!.edited_text, "Hello world");
  assert.equal(copy!.text, "let x = 1;");
  assert.equal(copy!.code_block, true);
  assert.deepEqual(copy!.metadata, { button: "code-copy" });
  const prose = "\n    Héllo 😀 world, try this:\n    ";
  assert.deepEqual(copy!.span, { start: [...prose].length, end: [...prose].length + 10 });
});

test("a copy over 64 KiB of text sends its span only", async () => {
  const { tracker, byId, document, events } = chat(false);
  byId("prose").textContent = "y".repeat(70_000);
  const range = document.createRange();
  range.selectNodeContents(byId("prose"));
  tracker.copyElement(range);
  const [event] = await events();
  assert.equal("text" in event!, false);
  assert.equal((event!.span as { end: number }).end - (event!.span as { start: number }).start, 70_000);
});

test("close removes the listeners", async () => {
  const { tracker, copy, events } = chat();
  await tracker.close();
  copy("prose", 0, 3);
  assert.deepEqual(await events(), []);
});
