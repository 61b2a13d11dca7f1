// Generated from the event contract's JSON Schema (GET /v1/schema) by
// `npm run generate:types`; do not edit by hand.

export type ContractEvent = GenerationEvent | CopyEvent | EditEvent | RegenerateEvent | AbChoiceEvent | RatingEvent;
/**
 * One message of the conversation the model saw (OpenAI's chat format).
 */
export type Message = Message1 & Message1;
/**
 * The user copied (part of) a response.
 */
export type CopyEvent = CopyEventFields & CopyEventRequires;
export type CopyEventRequires =
  | {
      text: string;
    }
  | {
      span: {};
    };

/**
 * A model response was shown to the user.
 */
export interface GenerationEvent {
  /**
   * Client-generated UUID; the idempotency key (a resend with the same id is dropped).
   */
  event_id: string;
  /**
   * When the user acted, with a timezone (RFC 3339).
   */
  occurred_at: string;
  /**
   * The raw user id; replaced by a keyed pseudonym before anything is stored.
   */
  user_id: string;
  /**
   * The conversation; Kafka partitions by it, so one conversation's events stay in order.
   */
  conversation_id: string;
  /**
   * The client application.
   */
  app: AppInfo;
  /**
   * The user's training consent, when the frontend knows it.
   */
  consent?: Consent | null;
  /**
   * The client's own labels (experiment, prompt version...); string values are scrubbed
   * like texts before landing, and a dataset can select its rows by them.
   */
  metadata?: {
    [k: string]: string | number | boolean | null;
  } | null;
  /**
   * Version of this contract; always 1 for now.
   */
  schema_version: 1;
  type: "generation";
  /**
   * Id of this response.
   */
  response_id: string;
  /**
   * Id of the user message it answers; regenerations of the same prompt share it (siblings).
   */
  parent_id: string;
  /**
   * The messages the model saw, oldest first.
   *
   * @minItems 1
   * @maxItems 200
   */
  prompt: [Message, ...Message[]];
  /**
   * The response text as shown.
   */
  response: string;
  /**
   * The model that produced it.
   */
  model: ModelInfo;
}
/**
 * The client application that observed the event.
 */
export interface AppInfo {
  /**
   * Application name, e.g. ``web`` or ``vscode-extension``.
   */
  name: string;
  /**
   * Application version string.
   */
  version: string;
}
/**
 * What the user agreed to; events without training consent never reach a dataset.
 */
export interface Consent {
  /**
   * The user allowed their interactions to be used to train models.
   */
  training: boolean;
  /**
   * Version of the consent text the user agreed to.
   */
  policy_version?: string | null;
}
export interface Message1 {
  /**
   * Who wrote the message.
   */
  role: "system" | "user" | "assistant" | "tool";
  /**
   * The message text, or a list of content parts (images only in user messages). Required,
   * except on an assistant message with ``tool_calls``.
   */
  content?: (string | [TextPart | ImagePart, ...(TextPart | ImagePart)[]]) | null;
  /**
   * For assistant messages: the response this message is, linking continued conversations.
   */
  response_id?: string | null;
  /**
   * For assistant messages: the tools the model called.
   */
  tool_calls?: [ToolCall, ...ToolCall[]] | null;
  /**
   * For tool messages: the call (``tool_calls[].id``) this message answers.
   */
  tool_call_id?: string | null;
}
/**
 * A text part of a message's content.
 */
export interface TextPart {
  type: "text";
  /**
   * The text.
   */
  text: string;
}
/**
 * An image part of a user message's content, by URL.
 */
export interface ImagePart {
  type: "image_url";
  /**
   * The image.
   */
  image_url: ImageUrl;
}
/**
 * Where an image shown to the model is.
 */
export interface ImageUrl {
  /**
   * An ``http(s)`` URL of the image (scrubbed like a text before landing).
   */
  url: string;
  /**
   * The resolution the model saw it at, as OpenAI names it.
   */
  detail?: ("auto" | "low" | "high") | null;
}
/**
 * A call an assistant message made to a tool, as OpenAI's chat format writes it.
 */
export interface ToolCall {
  /**
   * The call's id; the tool message answering it names it in ``tool_call_id``.
   */
  id: string;
  type: "function";
  function: FunctionCall;
}
/**
 * The function a tool call invokes.
 */
export interface FunctionCall {
  /**
   * The function's name: letters, digits, ``_``, ``.`` or ``-``, at most 64.
   */
  name: string;
  /**
   * Its arguments as the model wrote them: a JSON text, not parsed (a model may write broken
   * JSON, and that is part of what was shown).
   */
  arguments: string;
}
/**
 * The model that produced a response.
 */
export interface ModelInfo {
  /**
   * Model name, e.g. ``chat-small``.
   */
  id: string;
  /**
   * Model version or checkpoint, when the frontend knows it.
   */
  version?: string | null;
}
export interface CopyEventFields {
  /**
   * Client-generated UUID; the idempotency key (a resend with the same id is dropped).
   */
  event_id: string;
  /**
   * When the user acted, with a timezone (RFC 3339).
   */
  occurred_at: string;
  /**
   * The raw user id; replaced by a keyed pseudonym before anything is stored.
   */
  user_id: string;
  /**
   * The conversation; Kafka partitions by it, so one conversation's events stay in order.
   */
  conversation_id: string;
  /**
   * The client application.
   */
  app: AppInfo;
  /**
   * The user's training consent, when the frontend knows it.
   */
  consent?: Consent | null;
  /**
   * The client's own labels (experiment, prompt version...); string values are scrubbed
   * like texts before landing, and a dataset can select its rows by them.
   */
  metadata?: {
    [k: string]: string | number | boolean | null;
  } | null;
  /**
   * Version of this contract; always 1 for now.
   */
  schema_version: 1;
  type: "copy";
  /**
   * The response copied from.
   */
  response_id: string;
  /**
   * The copied text.
   */
  text?: string | null;
  /**
   * The copied character range, when the frontend sends a range instead of text.
   */
  span?: Span | null;
  /**
   * The copy came from a fenced code block (a copy button on code).
   */
  code_block?: boolean;
}
/**
 * A character range of a response, end exclusive: ``end`` must be greater than ``start``.
 */
export interface Span {
  /**
   * First character, counted from 0.
   */
  start: number;
  /**
   * One past the last character; must be greater than ``start`` (a span is never empty).
   */
  end: number;
}
/**
 * The user edited a response; the edited text is what they wanted.
 */
export interface EditEvent {
  /**
   * Client-generated UUID; the idempotency key (a resend with the same id is dropped).
   */
  event_id: string;
  /**
   * When the user acted, with a timezone (RFC 3339).
   */
  occurred_at: string;
  /**
   * The raw user id; replaced by a keyed pseudonym before anything is stored.
   */
  user_id: string;
  /**
   * The conversation; Kafka partitions by it, so one conversation's events stay in order.
   */
  conversation_id: string;
  /**
   * The client application.
   */
  app: AppInfo;
  /**
   * The user's training consent, when the frontend knows it.
   */
  consent?: Consent | null;
  /**
   * The client's own labels (experiment, prompt version...); string values are scrubbed
   * like texts before landing, and a dataset can select its rows by them.
   */
  metadata?: {
    [k: string]: string | number | boolean | null;
  } | null;
  /**
   * Version of this contract; always 1 for now.
   */
  schema_version: 1;
  type: "edit";
  /**
   * The response edited.
   */
  response_id: string;
  /**
   * The full text after the user's edit.
   */
  edited_text: string;
}
/**
 * The user asked for another response in place of this one.
 */
export interface RegenerateEvent {
  /**
   * Client-generated UUID; the idempotency key (a resend with the same id is dropped).
   */
  event_id: string;
  /**
   * When the user acted, with a timezone (RFC 3339).
   */
  occurred_at: string;
  /**
   * The raw user id; replaced by a keyed pseudonym before anything is stored.
   */
  user_id: string;
  /**
   * The conversation; Kafka partitions by it, so one conversation's events stay in order.
   */
  conversation_id: string;
  /**
   * The client application.
   */
  app: AppInfo;
  /**
   * The user's training consent, when the frontend knows it.
   */
  consent?: Consent | null;
  /**
   * The client's own labels (experiment, prompt version...); string values are scrubbed
   * like texts before landing, and a dataset can select its rows by them.
   */
  metadata?: {
    [k: string]: string | number | boolean | null;
  } | null;
  /**
   * Version of this contract; always 1 for now.
   */
  schema_version: 1;
  type: "regenerate";
  /**
   * The response being replaced.
   */
  response_id: string;
  /**
   * The replacement, when the frontend knows its id already.
   */
  new_response_id?: string | null;
}
/**
 * Two responses were shown side by side and the user chose.
 */
export interface AbChoiceEvent {
  /**
   * Client-generated UUID; the idempotency key (a resend with the same id is dropped).
   */
  event_id: string;
  /**
   * When the user acted, with a timezone (RFC 3339).
   */
  occurred_at: string;
  /**
   * The raw user id; replaced by a keyed pseudonym before anything is stored.
   */
  user_id: string;
  /**
   * The conversation; Kafka partitions by it, so one conversation's events stay in order.
   */
  conversation_id: string;
  /**
   * The client application.
   */
  app: AppInfo;
  /**
   * The user's training consent, when the frontend knows it.
   */
  consent?: Consent | null;
  /**
   * The client's own labels (experiment, prompt version...); string values are scrubbed
   * like texts before landing, and a dataset can select its rows by them.
   */
  metadata?: {
    [k: string]: string | number | boolean | null;
  } | null;
  /**
   * Version of this contract; always 1 for now.
   */
  schema_version: 1;
  type: "ab_choice";
  /**
   * The response shown on the left (or first).
   */
  response_a_id: string;
  /**
   * The response shown on the right (or second); must differ from ``response_a_id``.
   */
  response_b_id: string;
  /**
   * Which one the user preferred; ``tie`` and ``both_bad`` are answers too.
   */
  choice: "a" | "b" | "tie" | "both_bad";
}
/**
 * The user rated a response up or down.
 */
export interface RatingEvent {
  /**
   * Client-generated UUID; the idempotency key (a resend with the same id is dropped).
   */
  event_id: string;
  /**
   * When the user acted, with a timezone (RFC 3339).
   */
  occurred_at: string;
  /**
   * The raw user id; replaced by a keyed pseudonym before anything is stored.
   */
  user_id: string;
  /**
   * The conversation; Kafka partitions by it, so one conversation's events stay in order.
   */
  conversation_id: string;
  /**
   * The client application.
   */
  app: AppInfo;
  /**
   * The user's training consent, when the frontend knows it.
   */
  consent?: Consent | null;
  /**
   * The client's own labels (experiment, prompt version...); string values are scrubbed
   * like texts before landing, and a dataset can select its rows by them.
   */
  metadata?: {
    [k: string]: string | number | boolean | null;
  } | null;
  /**
   * Version of this contract; always 1 for now.
   */
  schema_version: 1;
  type: "rating";
  /**
   * The response rated.
   */
  response_id: string;
  /**
   * Thumbs up or down.
   */
  value: "up" | "down";
  /**
   * Free-text reason, when the user gave one.
   */
  reason?: string | null;
}
