/**
 * uidpush: a real-time push server. Clients hold a WebSocket bound to a user id; the
 * embedding program and other clients push to a uid or to everyone.
 *
 * @packageDocumentation
 */
export {
  createServer,
  UidpushServer,
  ListenError,
  type Listener,
  type ServerOptions,
  type ServerEvents,
  type MessageEvent,
  type CloseEvent,
  type ListenAddress,
  type TlsCertificateInfo,
} from './server/server.js';
export {
  serverOptionsSchema,
  resolveServerOptions,
  type ServerOptionsInput,
  type ResolvedServerOptions,
} from './server/options.js';
export { Hub, type HubStats, type SlowConsumerPolicy } from './delivery/hub.js';
export type {
  PushService,
  PushResult,
  BroadcastResult,
  UidPage,
  ServiceStats,
  WorkerStats,
  DropReason,
} from './core/service.js';
export type { ConnectionInfo } from './transport/connection-info.js';
export { CloseCode, mayReconnect } from './core/close-codes.js';
export { ErrorCode, ProgramErrorCode, UidpushError, UnavailableError } from './core/errors.js';
export type { Uid, Payload, Logger } from './core/types.js';
export { loginReply, errorLine, BROADCAST_UID } from './protocol/seed-text.js';
export { checkName, checkUid, checkGroup, type NameKind } from './core/names.js';
export type {
  Broker,
  BrokerStores,
  PresenceStore,
  MembershipStore,
  RevocationStore,
  UidRevocation,
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- kept for programs written before the split
  ClusterStore,
} from './broker/broker.js';
export { LocalBroker } from './broker/local.js';
export { MemoryCluster } from './broker/memory.js';
export { createRedisBroker, type RedisBrokerOptions } from './broker/redis/broker.js';
export { type Envelope, ENVELOPE_VERSION } from './broker/envelope.js';
