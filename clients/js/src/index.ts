export { StreamerClient, backoffDelay, jwtExp } from "./client.js";
export type {
  BackoffOptions,
  ConnectionState,
  FrameEvent,
  PublishResult,
  RecoveryEvent,
  RequestHandle,
  RequestOptions,
  StreamerClientOptions,
  Subscription,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { StreamerError } from "./errors.js";
export * from "./frames.js";
/** The types generated from docs/protocol.schema.json, under the schema's names. */
export type * as Protocol from "./protocol.generated.js";
