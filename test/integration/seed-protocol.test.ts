import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { connect, offlineOf, startServer, type Started, type TestClient } from '../helpers/clients.js';

let started: Started;
const clients: TestClient[] = [];
async function client(uid?: string): Promise<TestClient> {
  const c = await connect(started.url);
  clients.push(c);
  if (uid !== undefined) await c.login(uid);
  return c;
}

beforeEach(async () => {
  started = await startServer();
});
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await started.stop();
});

describe('seed text protocol', () => {
  it('answers the first message with the seed login reply, byte for byte', async () => {
    const alice = await client();
    alice.send('alice');
    expect(await alice.next()).toBe('login success, your uid is alice');
  });

  it('lets two clients log in and push to each other', async () => {
    const alice = await client('alice');
    const bob = await client('bob');
    alice.send('bob:hi bob');
    expect(await bob.next()).toBe('hi bob');
    bob.send('alice:hi alice');
    expect(await alice.next()).toBe('hi alice');
    // The sender gets no acknowledgement, as in the seed.
    await alice.nothingFor();
  });

  it('splits on the first colon only, so messages keep their colons', async () => {
    const alice = await client('alice');
    const bob = await client('bob');
    alice.send('bob:a:b:c');
    expect(await bob.next()).toBe('a:b:c');
  });

  it('delivers an empty message as an empty text frame, as the seed does', async () => {
    const alice = await client('alice');
    const bob = await client('bob');
    alice.send('bob:');
    expect(await bob.next()).toBe('');
  });

  it('lets a client push to itself', async () => {
    const alice = await client('alice');
    alice.send('alice:me');
    expect(await alice.next()).toBe('me');
  });

  it('broadcasts all:<message> to every logged-in connection, sender included', async () => {
    const alice = await client('alice');
    const bob = await client('bob');
    const anonymous = await client();
    alice.send('all:yo');
    expect(await alice.next()).toBe('yo');
    expect(await bob.next()).toBe('yo');
    await anonymous.nothingFor();
  });

  it('drops a push to an offline uid silently, as the seed does', async () => {
    const alice = await client('alice');
    alice.send('nobody:hi');
    await alice.nothingFor();
    expect(alice.ws.readyState).toBe(alice.ws.OPEN);
  });

  it('does not trim uids', async () => {
    const alice = await client('alice');
    const bob = await client('bob');
    alice.send(' bob:hi');
    await bob.nothingFor();
  });

  it('delivers a push to every connection of a uid', async () => {
    const phone = await client('alice');
    const laptop = await client('alice');
    const bob = await client('bob');
    bob.send('alice:to both');
    expect(await phone.next()).toBe('to both');
    expect(await laptop.next()).toBe('to both');
    expect(started.server.local.connectionsOf('alice')).toBe(2);
  });

  it('keeps the other connections of a uid bound when one closes', async () => {
    const phone = await client('alice');
    const laptop = await client('alice');
    const bob = await client('bob');
    const closed = once(started.server, 'close');
    phone.close();
    await closed;
    expect(started.server.local.connectionsOf('alice')).toBe(1);
    bob.send('alice:still here');
    expect(await laptop.next()).toBe('still here');
    bob.send('all:everyone');
    expect(await laptop.next()).toBe('everyone');
    expect(await bob.next()).toBe('everyone');
  });

  it('forgets a uid once its last connection closes', async () => {
    const alice = await client('alice');
    expect(started.server.local.isOnline('alice')).toBe(true);
    const closed = once(started.server, 'close');
    const gone = offlineOf(started.server, 'alice');
    alice.close();
    await Promise.all([closed, gone]);
    expect(started.server.local.isOnline('alice')).toBe(false);
    expect(started.server.local.onlineUids).toBe(0);
    expect(started.server.local.connections).toBe(0);
    expect(started.server.openConnections).toBe(0);
  });

  it('carries multi-byte UTF-8 uids and messages intact', async () => {
    const alice = await client('爱丽丝');
    const bob = await client('bob');
    bob.send('爱丽丝:héllo 🌍');
    expect(await alice.next()).toBe('héllo 🌍');
  });

  it('delivers a large message within the limit intact', async () => {
    started = await restart({ maxMessageSize: 200_000 });
    const alice = await client('alice');
    const bob = await client('bob');
    const big = 'x'.repeat(100_000);
    alice.send(`bob:${big}`);
    expect(await bob.next()).toBe(big);
  });
});

async function restart(options: Parameters<typeof startServer>[0]): Promise<Started> {
  await started.stop();
  return startServer(options);
}
