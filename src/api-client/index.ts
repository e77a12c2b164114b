/**
 * The typed client of the uidpush server API: `import { PushClient } from 'uidpush/client'`.
 * It imports nothing of the server.
 *
 * @packageDocumentation
 */
export {
  PushClient,
  PushApiError,
  type PushClientOptions,
  type PushClientErrorCode,
  type UserPresence,
} from './push-client.js';
export type { PushResult, BroadcastResult, UidPage, ServiceStats, WorkerStats, DropReason, GroupInfo } from '../core/service.js';
export { ErrorCode } from '../core/errors.js';
