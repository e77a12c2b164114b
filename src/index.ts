/**
 * uidpush: a real-time push server. Clients hold a WebSocket bound to a user id; the
 * embedding program and other clients push to a uid or to everyone.
 *
 * The public surface only: the server, its options and events, results, errors and codes,
 * and the brokers an embedder configures. Internals (the hub, the options schema, protocol
 * and name helpers) are imported from their modules by the package's own code and tests.
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
export type { ServerOptionsInput, ResolvedServerOptions } from './server/options.js';
export type { HubStats, SlowConsumerPolicy } from './delivery/hub.js';
export type {
  PushService,
  PushResult,
  PushOptions,
  UidPosition,
  BroadcastResult,
  UidPage,
  ServiceStats,
  WorkerStats,
  DropReason,
} from './core/service.js';
export type {
  DeliveryClass,
  InboxPosition,
  InboxInfo,
  InboxDevice,
  InboxEntry,
  InboxOpened,
  InboxPage,
  AppendRequest,
  Appended,
  AckOutcome,
  Retention,
} from './core/inbox.js';
export { parseDelivery, RETENTION_DEFAULTS } from './core/inbox.js';
export type { ConnectionInfo } from './transport/connection-info.js';
export { CloseCode, mayReconnect } from './core/close-codes.js';
export { ErrorCode, ProgramErrorCode, UidpushError, UnavailableError } from './core/errors.js';
export type { Uid, Payload, Logger } from './core/types.js';
export type {
  Broker,
  BrokerStores,
  PresenceStore,
  MembershipStore,
  RevocationStore,
  UidRevocation,
  InboxStore,
  RetainedEnvelope,
  // eslint-disable-next-line @typescript-eslint/no-deprecated -- kept for programs written before the split
  ClusterStore,
} from './broker/broker.js';
export { retainedMessage } from './broker/broker.js';
export { LocalBroker } from './broker/local.js';
export { MemoryInbox } from './broker/memory-inbox.js';
export { MemoryCluster } from './broker/memory.js';
export { createRedisBroker, type RedisBrokerOptions } from './broker/redis/broker.js';
