/**
 * The typed client of the uidpush server API: `import { PushClient } from 'uidpush/api-client'`
 * (`uidpush/client` is the WebSocket client SDK, src/client).
 * It imports nothing of the server.
 *
 * @packageDocumentation
 */
export {
  PushClient,
  PushApiError,
  type PushClientOptions,
  type PushClientErrorCode,
  type PushRequestOptions,
  type UserPresence,
} from './push-client.js';
export type {
  PushResult,
  UidPosition,
  BroadcastResult,
  UidPage,
  ServiceStats,
  WorkerStats,
  DropReason,
  GroupInfo,
} from '../core/service.js';
export type { InboxInfo, InboxDevice, InboxPosition } from '../core/inbox.js';
export { ErrorCode } from '../core/errors.js';
