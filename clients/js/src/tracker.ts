/** The tracker: event helpers, consent, user, metadata, and the page's lifecycle. */

import type { Consent, ContractEvent } from "./contract.js";
import {
  abContext,
  capture,
  copyOfElement,
  copyOfRange,
  responseContext,
  type ResponseContext,
} from "./dom.js";
import { Queue, type QueueEnv } from "./queue.js";
import { openStore, type StorageEnv } from "./store.js";
import { Pages } from "./tabs.js";
import { Transport, type TransportEnv } from "./transport.js";
import type {
  AbChoiceInput,
  CopyInput,
  EditInput,
  GenerationInput,
  Metadata,
  RatingInput,
  RegenerateInput,
  TrackedEvent,
  TrackerOptions,
} from "./types.js";

/** Everything the tracker takes from its runtime; `browserEnv()` gives the real ones. */
export interface Env extends QueueEnv, TransportEnv, StorageEnv {
  /** Where `pagehide` and `online` fire (the window). */
  window?: Pick<EventTarget, "addEventListener" | "removeEventListener">;
  /** Where `visibilitychange` fires and selections are read. */
  document?: Document;
  randomUUID: () => string;
}

/** The runtime's own: a browser's window, document and navigator when there are any. */
export function browserEnv(): Env {
  const g = globalThis as typeof globalThis & { document?: Document; navigator?: Navigator };
  const navigator = g.navigator;
  let localStorage: Storage | undefined;
  try {
    localStorage = g.localStorage;
  } catch {
    // Access itself throws where storage is blocked.
  }
  const env: Env = {
    fetch: (input, init) => g.fetch(input, init),
    now: () => Date.now(),
    random: Math.random,
    setTimeout: (run, ms) => g.setTimeout(run, ms),
    clearTimeout: (handle) => g.clearTimeout(handle as ReturnType<typeof setTimeout>),
    randomUUID: () => uuid4(),
  };
  if (typeof navigator?.sendBeacon === "function")
    env.sendBeacon = (url, body) => navigator.sendBeacon(url, body);
  if (navigator?.locks) env.locks = navigator.locks;
  if (g.indexedDB) env.indexedDB = g.indexedDB;
  if (localStorage) env.localStorage = localStorage;
  if (g.document && typeof g.addEventListener === "function") {
    env.document = g.document;
    env.window = g as unknown as EventTarget;
  }
  return env;
}

/** A random UUID v4: `crypto.randomUUID`, which only secure pages (https, localhost) have,
 * else the same from `crypto.getRandomValues`. */
function uuid4(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Records a chat UI's implicit feedback and delivers it to the ingest API. */
export class Tracker {
  private readonly queue: Queue;
  private readonly pages: Pages;
  private userId: string | undefined;
  private consent: Consent | null;
  private readonly metadata: Metadata;
  private readonly removers: (() => void)[] = [];

  constructor(
    private readonly options: TrackerOptions,
    private readonly env: Env = browserEnv(),
  ) {
    for (const name of ["endpoint", "key"] as const) {
      if (!options[name]) throw new TypeError(`createTracker: ${name} is required`);
    }
    if (!options.app?.name || !options.app?.version)
      throw new TypeError("createTracker: app {name, version} is required");
    this.userId = options.userId;
    this.consent = options.consent ?? null;
    this.metadata = { ...options.metadata };
    this.pages = new Pages(env.randomUUID(), env.locks, env.now);
    const store = openStore(options.storage ?? "auto", `feedback-flywheel ${options.endpoint}`, env);
    const onError = options.onError;
    this.queue = new Queue(
      new Transport(options.endpoint, options.key, env, options.compress ?? false),
      store,
      this.pages,
      {
        flushAt: options.flushAt ?? 20,
        flushIntervalMs: options.flushIntervalMs ?? 5000,
        maxQueueSize: options.maxQueueSize ?? 1000,
        maxRetries: options.maxRetries ?? 10,
        onDrop: (dropped) => onError?.(dropped),
      },
      env,
    );
    this.queue.setActive(this.consented());
    this.listen();
  }

  /** A copy of (part of) a response. Returns the event id, or null when nothing is recorded
   * (no training consent, no user, or `onError` was told why). */
  copy(input: CopyInput): string | null {
    return this.record("copy", input);
  }

  /** The user's edited text of a response. */
  edit(input: EditInput): string | null {
    return this.record("edit", input);
  }

  /** The user asked for another response in place of `response_id`. */
  regenerate(input: RegenerateInput): string | null {
    return this.record("regenerate", input);
  }

  /** The user's choice between two responses shown side by side. */
  abChoice(input: AbChoiceInput): string | null {
    return this.record("ab_choice", input);
  }

  /** Thumbs up or down on a response. */
  rating(input: RatingInput): string | null {
    return this.record("rating", input);
  }

  /**
   * A response was shown, with the prompt the model saw: a backend's event (it holds the prompt
   * and the model), sent with a write key. Publishable keys do not allow it unless configured to,
   * and the API rejects it (`onError`, `event_type_not_allowed`).
   */
  generation(input: GenerationInput): string | null {
    return this.record("generation", input);
  }

  /** The response (and conversation) an element belongs to, from the `data-flywheel-*`
   * attributes: what an edit widget passes to `edit`. */
  context(element: Node): { response_id: string; conversation_id: string } | null {
    const found: ResponseContext | null = responseContext(element);
    return found && { response_id: found.response_id, conversation_id: found.conversation_id };
  }

  /** The A/B pair an element belongs to: what an A/B widget passes to `abChoice` with its `choice`. */
  abContext(element: Node): Omit<AbChoiceInput, "choice"> | null {
    return abContext(element);
  }

  /** Records the copy of `target` (an element, such as the `pre` a copy button copies, or a
   * range) with its span in the response and whether it is code; `text` is what was copied. */
  copyElement(target: Element | Range, text?: string, metadata?: Metadata): string | null {
    const input = "nodeType" in target ? copyOfElement(target, text) : copyOfRange(target, text);
    if (!input) return null;
    if (metadata) input.metadata = metadata;
    return this.copy(input);
  }

  /** The user the next events belong to (raw; pseudonymised by the API). */
  setUser(userId: string | undefined): void {
    this.userId = userId;
  }

  /**
   * The user's training consent. With `{training: true}` events are recorded and sent, carrying
   * it. Anything else stops recording and deletes the unsent events of this page and of closed
   * pages (reported to `onError` as `consent_withdrawn`); it resolves once they are deleted.
   */
  async setConsent(consent: Consent | null): Promise<void> {
    this.consent = consent;
    if (this.consented()) this.queue.setActive(true);
    else await this.queue.clear("consent_withdrawn");
  }

  /** Sends what waits now; resolves once the API answered (or a retry is scheduled). */
  flush(): Promise<void> {
    return this.queue.flush();
  }

  /** Events this page holds unsent. */
  get pending(): number {
    return this.queue.size;
  }

  /** Removes the listeners and timers and gives this page's unsent events over to the next page
   * (they stay stored); call `flush` first to send them now. */
  async close(): Promise<void> {
    for (const remove of this.removers.splice(0)) remove();
    this.queue.close();
    await this.queue.settled();
    this.pages.close();
  }

  private consented(): boolean {
    return this.consent?.training === true;
  }

  private record(type: ContractEvent["type"], input: { metadata?: Metadata }): string | null {
    if (!this.consented() || !this.userId) return null;
    const metadata = { ...this.metadata, ...input.metadata };
    const event = {
      ...input,
      event_id: this.env.randomUUID(),
      type,
      occurred_at: new Date(this.env.now()).toISOString(),
      user_id: this.userId,
      app: { name: this.options.app.name, version: this.options.app.version },
      consent: { ...this.consent },
      schema_version: 1,
    } as TrackedEvent;
    if (Object.keys(metadata).length) event.metadata = metadata;
    else delete event.metadata;
    return this.queue.add(event) ? event.event_id : null;
  }

  private listen(): void {
    const { window, document } = this.env;
    if (!window || !document) return;
    const on = (
      target: Pick<EventTarget, "addEventListener" | "removeEventListener">,
      type: string,
      listener: () => void,
    ) => {
      target.addEventListener(type, listener);
      this.removers.push(() => target.removeEventListener(type, listener));
    };
    // `visibilitychange` to hidden is the last event a mobile browser reliably fires before it
    // may discard the page; `pagehide` covers the rest (navigation, closing, bfcache).
    on(document, "visibilitychange", () => {
      if (document.visibilityState === "hidden") this.queue.flushOnHide();
    });
    on(window, "pagehide", () => this.queue.flushOnHide());
    on(window, "online", () => this.queue.resume());
    const auto = this.options.autoCapture;
    if (auto) {
      const wanted =
        auto === true
          ? { copy: true, clicks: true }
          : { copy: auto.copy ?? false, clicks: auto.clicks ?? false };
      this.removers.push(capture(document, this, wanted));
    }
  }
}

/** A tracker for one API endpoint and key; see `TrackerOptions`. */
export function createTracker(options: TrackerOptions): Tracker {
  return new Tracker(options);
}
