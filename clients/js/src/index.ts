/**
 * Feedback Flywheel's browser tracker: records what users do with a chat model's responses
 * (copy, edit, regenerate, A/B choice, rating) and delivers the events to the ingest API.
 *
 * ```js
 * import { createTracker } from "@feedback-flywheel/tracker";
 * const tracker = createTracker({ endpoint, key, app: { name: "web", version: "1.4.0" },
 *   userId, consent: { training: true, policy_version: "2024-05" }, autoCapture: true });
 * tracker.rating({ response_id: "r-42", conversation_id: "c-7", value: "up" });
 * ```
 */

export type * from "./contract.js";
export { ATTRIBUTES } from "./dom.js";
export { createTracker, Tracker } from "./tracker.js";
export type {
  AbChoiceInput,
  AutoCaptureOptions,
  CopyInput,
  DroppedEvents,
  EditInput,
  EventError,
  GenerationInput,
  Metadata,
  MetadataValue,
  RatingInput,
  RegenerateInput,
  StorageKind,
  TrackedEvent,
  TrackerOptions,
} from "./types.js";
