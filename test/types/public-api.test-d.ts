// Compile-time tests of the public API: `npm test`'s typecheck (tsc over test/) fails when a
// type drifts. Each `@ts-expect-error` fails the check if the line it marks compiles.
import { expectTypeOf } from 'vitest';
import { PushApiError, PushClient, type UserPresence } from '../../src/api-client/index.js';
import {
  createServer,
  type BroadcastResult,
  type ConnectionInfo,
  type MessageEvent,
  type PushResult,
  type ServerOptions,
  type UidpushServer,
} from '../../src/index.js';

export function serverTypes(): void {
  expectTypeOf(createServer).parameter(0).toEqualTypeOf<ServerOptions | undefined>();
  expectTypeOf(createServer).returns.toEqualTypeOf<UidpushServer>();
  createServer({ port: 0, apiPort: null, apiKey: 'k' });
  // @ts-expect-error a port is a number
  createServer({ port: '1234' });
  // @ts-expect-error unknown options are refused
  createServer({ prot: 1234 });

  const server = createServer();
  expectTypeOf(server.pushToUids(['a'], 'x')).toEqualTypeOf<PushResult | Promise<PushResult>>();
  expectTypeOf(server.broadcast('x')).toEqualTypeOf<BroadcastResult | Promise<BroadcastResult>>();
  expectTypeOf(server.publish('news', 'x')).toEqualTypeOf<PushResult | Promise<PushResult>>();
  expectTypeOf(server.join('news', 'a')).toEqualTypeOf<Promise<boolean>>();

  server.on('login', (conn, uid) => {
    expectTypeOf(conn).toEqualTypeOf<ConnectionInfo>();
    expectTypeOf(uid).toEqualTypeOf<string>();
  });
  server.on('message', (event) => {
    expectTypeOf(event).toEqualTypeOf<MessageEvent>();
  });
  // @ts-expect-error no such event
  server.on('logout', () => {});
}

export function clientTypes(client: PushClient): void {
  expectTypeOf(client.push('a', { n: 1 })).toEqualTypeOf<Promise<PushResult>>();
  expectTypeOf(client.pushMany(['a', 'b'], 1)).toEqualTypeOf<Promise<PushResult>>();
  expectTypeOf(client.broadcast('x')).toEqualTypeOf<Promise<BroadcastResult>>();
  expectTypeOf(client.pushToGroup('news', 'x')).toEqualTypeOf<Promise<PushResult>>();
  expectTypeOf(client.user('a')).toEqualTypeOf<Promise<UserPresence>>();
  expectTypeOf(client.ready()).toEqualTypeOf<Promise<boolean>>();
  expectTypeOf(client.allUsers()).toEqualTypeOf<AsyncGenerator<string>>();
  expectTypeOf<PushApiError['code']>().toExtend<string>();
  // @ts-expect-error pushMany takes a list of uids
  void client.pushMany('a', 1);
}
