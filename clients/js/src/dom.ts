/**
 * What the page's markup says about a response, and the opt-in listeners that read it.
 *
 * - `data-flywheel-response="<response id>"` on the element showing a response (its text is the
 *   response as rendered);
 * - `data-flywheel-conversation="<conversation id>"` on it or on any ancestor (the chat);
 * - `data-flywheel-response-a` and `data-flywheel-response-b` on the element holding an A/B pair;
 * - controls: `data-flywheel-rating="up|down"` and `data-flywheel-regenerate` inside a response,
 *   `data-flywheel-choice="a|b|tie|both_bad"` inside an A/B pair.
 */

import type { AbChoiceInput, CopyInput } from "./types.js";

export const ATTRIBUTES = {
  response: "data-flywheel-response",
  conversation: "data-flywheel-conversation",
  responseA: "data-flywheel-response-a",
  responseB: "data-flywheel-response-b",
  rating: "data-flywheel-rating",
  regenerate: "data-flywheel-regenerate",
  choice: "data-flywheel-choice",
} as const;

/** The longest copied text sent; a longer copy sends its span only. */
const MAX_TEXT_CHARS = 65_536;

const CHOICES = new Set(["a", "b", "tie", "both_bad"]);

/** The response an element belongs to. */
export interface ResponseContext {
  response_id: string;
  conversation_id: string;
  /** The element carrying `data-flywheel-response`. */
  element: Element;
}

function elementOf(node: Node | null): Element | null {
  return node === null ? null : node.nodeType === 1 ? (node as Element) : node.parentElement;
}

function conversationOf(element: Element): string | null {
  return element.closest(`[${ATTRIBUTES.conversation}]`)?.getAttribute(ATTRIBUTES.conversation) || null;
}

/** The response `node` is inside (its nearest `data-flywheel-response` element), with its
 * conversation; null when either attribute is missing. */
export function responseContext(node: Node | null): ResponseContext | null {
  const element = elementOf(node)?.closest(`[${ATTRIBUTES.response}]`);
  const responseId = element?.getAttribute(ATTRIBUTES.response);
  const conversationId = element ? conversationOf(element) : null;
  return element && responseId && conversationId
    ? { response_id: responseId, conversation_id: conversationId, element }
    : null;
}

/** The A/B pair `node` is inside, as an `abChoice` input without its `choice`. */
export function abContext(node: Node | null): Omit<AbChoiceInput, "choice"> | null {
  const element = elementOf(node)?.closest(`[${ATTRIBUTES.responseA}][${ATTRIBUTES.responseB}]`);
  if (!element) return null;
  const a = element.getAttribute(ATTRIBUTES.responseA);
  const b = element.getAttribute(ATTRIBUTES.responseB);
  const conversationId = conversationOf(element);
  return a && b && conversationId
    ? { response_a_id: a, response_b_id: b, conversation_id: conversationId }
    : null;
}

/** Length in Unicode code points, as the API (Python) counts characters. */
function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}

/** Inside a `pre` or `code` element that is itself inside the response. */
function inCode(node: Node, response: Element): boolean {
  const code = elementOf(node)?.closest("pre, code");
  return !!code && response.contains(code);
}

/**
 * The copy event of `range` (a selection, or the contents of a copied element): its response,
 * the text (`text`, else the range's), its span within the response's text (`textContent`,
 * counted in code points) and whether it lies wholly in a code block. Null outside a response
 * or for an empty range.
 */
export function copyOfRange(range: Range, text?: string): CopyInput | null {
  const context = responseContext(range.commonAncestorContainer);
  if (!context) return null;
  const before = range.cloneRange();
  before.selectNodeContents(context.element);
  before.setEnd(range.startContainer, range.startOffset);
  const start = codePoints(before.toString());
  const end = start + codePoints(range.toString());
  if (end <= start) return null;
  const copied = text ?? range.toString();
  const input: CopyInput = {
    response_id: context.response_id,
    conversation_id: context.conversation_id,
    span: { start, end },
    code_block: inCode(range.commonAncestorContainer, context.element),
  };
  if (copied.length <= MAX_TEXT_CHARS) input.text = copied;
  return input;
}

/** The copy event of a whole element (what a copy button copies, e.g. a `pre`). */
export function copyOfElement(element: Element, text?: string): CopyInput | null {
  const range = element.ownerDocument.createRange();
  range.selectNodeContents(element);
  return copyOfRange(range, text);
}

/** What the listeners report, one call per event. */
export interface Captured {
  copy(input: CopyInput): unknown;
  rating(input: { response_id: string; conversation_id: string; value: "up" | "down" }): unknown;
  regenerate(input: { response_id: string; conversation_id: string }): unknown;
  abChoice(input: AbChoiceInput): unknown;
}

/** Adds the listeners to `document`; returns what removes them. */
export function capture(
  document: Document,
  report: Captured,
  options: { copy: boolean; clicks: boolean },
): () => void {
  const onCopy = (): void => {
    const selection = document.getSelection();
    if (!selection || selection.isCollapsed || selection.rangeCount === 0) return;
    // What the user copied, as the browser puts it on the clipboard (line breaks of blocks).
    const input = copyOfRange(selection.getRangeAt(0), selection.toString());
    if (input) report.copy(input);
  };
  const onClick = (event: Event): void => {
    const target = elementOf(event.target as Node | null);
    const control = target?.closest(
      `[${ATTRIBUTES.rating}], [${ATTRIBUTES.regenerate}], [${ATTRIBUTES.choice}]`,
    );
    if (!control) return;
    const rating = control.getAttribute(ATTRIBUTES.rating);
    const choice = control.getAttribute(ATTRIBUTES.choice);
    if (choice !== null) {
      const pair = abContext(control);
      if (pair && CHOICES.has(choice))
        report.abChoice({ ...pair, choice: choice as AbChoiceInput["choice"] });
      return;
    }
    const context = responseContext(control);
    if (!context) return;
    const ids = { response_id: context.response_id, conversation_id: context.conversation_id };
    if (rating === "up" || rating === "down") report.rating({ ...ids, value: rating });
    else if (control.hasAttribute(ATTRIBUTES.regenerate)) report.regenerate(ids);
  };
  if (options.copy) document.addEventListener("copy", onCopy, true);
  if (options.clicks) document.addEventListener("click", onClick, true);
  return () => {
    document.removeEventListener("copy", onCopy, true);
    document.removeEventListener("click", onClick, true);
  };
}
