// Compile-time proof that the hand-written frame types (frames.ts) and the types
// generated from docs/protocol.schema.json (protocol.generated.ts) agree. Nothing
// here runs; `npm run build` fails when they drift apart.
//
// Server frames: every frame the schema allows must fit the SDK's type (the SDK
// can read all of it), and the SDK's type must name every field the schema has.
// Client frames: every frame the SDK's type allows must be valid by the schema.

import type * as Hand from "./frames.js";
import type * as Gen from "./protocol.generated.js";

/** Compiles only when T is `true`. */
type Assert<T extends true> = T;
/** True when A is assignable to B. */
type Fits<A, B> = [A] extends [B] ? true : false;
/** Every key of every member of a union. */
type AllKeys<U> = U extends unknown ? keyof U : never;
/** True when every key of A is a key of B (across the members of unions). */
type KeysCovered<A, B> = [Exclude<AllKeys<A>, AllKeys<B>>] extends [never] ? true : false;

// ---- server -> client: schema fits the SDK ------------------------------------------

export type ServerChecks = [
  Assert<Fits<Gen.PongFrame, Hand.PongFrame>>,
  Assert<Fits<Gen.AckFrame, Hand.AckFrame>>,
  Assert<KeysCovered<Gen.AckFrame, Hand.AckFrame>>,
  Assert<Fits<Gen.MessageFrame, Hand.MessageFrame>>,
  Assert<KeysCovered<Gen.MessageFrame, Hand.MessageFrame>>,
  Assert<Fits<Gen.ErrorFrame, Hand.ErrorFrame>>,
  Assert<KeysCovered<Gen.ErrorFrame, Hand.ErrorFrame>>,
  Assert<Fits<Gen.ProgressFrame, Hand.ProgressFrame>>,
  Assert<KeysCovered<Gen.ProgressFrame, Hand.ProgressFrame>>,
  Assert<Fits<Gen.ResultFrame, Hand.ResultFrame>>,
  Assert<KeysCovered<Gen.ResultFrame, Hand.ResultFrame>>,
  Assert<Fits<Gen.RequestStatusFrame, Hand.RequestStateFrame>>,
  Assert<KeysCovered<Gen.RequestStatusFrame, Hand.RequestStateFrame>>,
  Assert<Fits<Gen.HistoryReplyFrame, Hand.HistoryFrame>>,
  Assert<KeysCovered<Gen.HistoryReplyFrame, Hand.HistoryFrame>>,
  Assert<Fits<Gen.TokenExpiringFrame, Hand.TokenExpiringFrame>>,
  Assert<KeysCovered<Gen.TokenExpiringFrame, Hand.TokenExpiringFrame>>,
  Assert<Fits<Gen.ServerFrame, Hand.ServerFrame>>,
  Assert<Fits<Gen.ErrorCode, Hand.ErrorCode>>,
  Assert<Fits<Gen.RequestState, Hand.RequestState>>,
  Assert<Fits<Hand.RequestState, Gen.RequestState>>,
];

// ---- client -> server: the SDK's frames are valid by the schema --------------------

export type ClientChecks = [
  Assert<Fits<Hand.PingFrame, Gen.PingFrame>>,
  Assert<Fits<Hand.SubscribeFrame, Gen.SubscribeFrame>>,
  Assert<Fits<Hand.UnsubscribeFrame, Gen.UnsubscribeFrame>>,
  Assert<Fits<Hand.PublishFrame, Gen.PublishFrame>>,
  Assert<Fits<Hand.RequestFrame, Gen.RequestFrame>>,
  Assert<Fits<Hand.CancelFrame, Gen.CancelFrame>>,
  Assert<Fits<Hand.StatusFrame, Gen.StatusFrame>>,
  Assert<Fits<Hand.HistoryRequestFrame, Gen.HistoryFrame>>,
  Assert<Fits<Hand.RefreshFrame, Gen.RefreshFrame>>,
  Assert<Fits<Hand.ClientFrame, Gen.ClientFrame>>,
  // ... and send no field the schema does not name (an optional extra field would
  // pass the checks above).
  Assert<KeysCovered<Hand.PingFrame, Gen.PingFrame>>,
  Assert<KeysCovered<Hand.SubscribeFrame, Gen.SubscribeFrame>>,
  Assert<KeysCovered<Hand.UnsubscribeFrame, Gen.UnsubscribeFrame>>,
  Assert<KeysCovered<Hand.PublishFrame, Gen.PublishFrame>>,
  Assert<KeysCovered<Hand.RequestFrame, Gen.RequestFrame>>,
  Assert<KeysCovered<Hand.CancelFrame, Gen.CancelFrame>>,
  Assert<KeysCovered<Hand.StatusFrame, Gen.StatusFrame>>,
  Assert<KeysCovered<Hand.HistoryRequestFrame, Gen.HistoryFrame>>,
  Assert<KeysCovered<Hand.RefreshFrame, Gen.RefreshFrame>>,
];

// Negative controls, so the helpers above cannot silently accept everything.
// @ts-expect-error a message without message_id is not a schema MessageFrame
export type NegativeFits = Assert<Fits<Omit<Hand.MessageFrame, "message_id">, Gen.MessageFrame>>;
// @ts-expect-error a field the schema does not name is caught
export type NegativeKeys = Assert<KeysCovered<Hand.CancelFrame & { extra?: number }, Gen.CancelFrame>>;
