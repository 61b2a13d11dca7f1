/** The tracker's public types: options, helper inputs and what it reports. */

import type {
  AbChoiceEvent,
  Consent,
  ContractEvent,
  CopyEvent,
  EditEvent,
  GenerationEvent,
  RatingEvent,
  RegenerateEvent,
} from "./contract.js";

/** A value of an event's `metadata`: flat, scalars only. */
export type MetadataValue = string | number | boolean | null;

/** An event's `metadata`, e.g. `{experiment: "exp-7", prompt_version: "v3"}`. */
export type Metadata = Record<string, MetadataValue>;

/** The fields the tracker fills in itself. */
type Filled = "event_id" | "occurred_at" | "user_id" | "app" | "consent" | "schema_version" | "type";

/** A helper's input: the event's own fields (the contract's names), plus `metadata`. */
type Input<E> = E extends unknown ? Omit<E, Filled> & { metadata?: Metadata } : never;

export type CopyInput = Input<CopyEvent>;
export type EditInput = Input<EditEvent>;
export type RegenerateInput = Input<RegenerateEvent>;
export type AbChoiceInput = Input<AbChoiceEvent>;
export type RatingInput = Input<RatingEvent>;
export type GenerationInput = Input<GenerationEvent>;

/** An event as sent: the contract's, with the optional `metadata`. */
export type TrackedEvent = ContractEvent & { metadata?: Metadata };

/** One reason the API gave for refusing an event (`path` names the field). */
export interface EventError {
  path: string;
  type: string;
  message: string;
}

/** Events the tracker gave up on, handed to `onError`. They will not be sent again. */
export interface DroppedEvents {
  /**
   * Why: `rejected` (the API refused these events: `errors` says why), `refused` (the API
   * refused the request, e.g. a wrong key: `status`), `retries_exhausted` (`maxRetries`
   * retryable answers in a row), `too_large` (over 64 KiB as JSON), `queue_full`
   * (`maxQueueSize` events were already waiting), `consent_withdrawn` (`setConsent` without
   * training consent removed them before they were sent).
   */
  reason: "rejected" | "refused" | "retries_exhausted" | "too_large" | "queue_full" | "consent_withdrawn";
  /** The HTTP status, when an answer caused it. */
  status?: number;
  /** The events, by id and type; their texts are never repeated here. */
  events: { event_id: string; type: string; errors?: EventError[] }[];
}

/** Which listeners `autoCapture` adds (all of them with `autoCapture: true`). */
export interface AutoCaptureOptions {
  /** `copy` events of selections inside a `data-flywheel-response` element. */
  copy?: boolean;
  /** Clicks on `data-flywheel-rating`, `data-flywheel-regenerate` and `data-flywheel-choice` controls. */
  clicks?: boolean;
}

/** How the tracker keeps unsent events: `auto` tries IndexedDB, then localStorage, then memory. */
export type StorageKind = "auto" | "indexeddb" | "localstorage" | "memory";

/** Options of `createTracker`. */
export interface TrackerOptions {
  /** The API's base URL, e.g. `https://flywheel.example.com`. */
  endpoint: string;
  /** A publishable key in a browser; a write key only in a backend (never in a page). */
  key: string;
  /** The application, sent with every event as `app`. */
  app: { name: string; version: string };
  /** The user's id (raw: the API pseudonymises it before storing anything). `setUser` changes it. */
  userId?: string | undefined;
  /**
   * The user's training consent. Only with `{training: true}` does the tracker record and send
   * events; not given, `null` or `{training: false}`: nothing is sent or stored.
   */
  consent?: Consent | null | undefined;
  /** Metadata added to every event; a helper's own `metadata` wins key by key. */
  metadata?: Metadata;
  /** Send as soon as this many events wait (default 20). */
  flushAt?: number;
  /** Send events at most this long after they were recorded (default 5000 ms). */
  flushIntervalMs?: number;
  /** Most events a page keeps unsent; beyond it new events are dropped (default 1000). */
  maxQueueSize?: number;
  /** Answers asking to retry (408, 429, 5xx) an event survives before it is dropped (default 10);
   * network errors (offline, the API unreachable) never drop an event. */
  maxRetries?: number;
  /** Where unsent events wait across reloads (default `auto`). */
  storage?: StorageKind;
  /** Opt-in listeners for copies and the widgets' data attributes (default off). */
  autoCapture?: boolean | AutoCaptureOptions;
  /** gzip request bodies over 1 KiB where `CompressionStream` exists (default false). */
  compress?: boolean;
  /** Called with events given up on; never with an event's texts. */
  onError?: (dropped: DroppedEvents) => void;
}
