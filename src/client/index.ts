/**
 * The uidpush WebSocket client SDK: `import { Client } from 'uidpush/client'`. Browser-safe
 * (no Node built-ins); in Node pass `ws`'s WebSocket. See docs/client.md.
 *
 * @packageDocumentation
 */
export {
  Client,
  ClientError,
  PROTOCOL,
  type ClientOptions,
  type ClientStorage,
  type ClientState,
  type ClientEvents,
  type ClientErrorCode,
  type StateEvent,
  type MessageEvent,
  type WebSocketConstructor,
} from './client.js';
export { backoffDelay, isDuplicate, jwtExpiry, refreshDelay, type Position } from './policy.js';
export type { ServerFrame, MessageFrame, WelcomeFrame, ResyncFrame } from '../core/frames.js';
