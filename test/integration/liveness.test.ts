import { setImmediate as tick } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { CloseCode } from '../../src/index.js';
import { connect, offlineOf, receivedUntil, testBed, type TestClient } from '../helpers/clients.js';

const bed = testBed();
const { setup } = bed;
const client = (url: string, uid?: string, autoPong = true): Promise<TestClient> => bed.client(url, uid, { autoPong });
afterEach(bed.cleanup);

describe('slow consumers', () => {
  it('closes a client that stops reading at the cap while the others keep receiving', async () => {
    const { url, server } = await setup({ maxBufferedBytes: 256 * 1024 });
    const slow = await client(url, 'slow');
    const fast = await client(url, 'fast');
    const slowClosed = new Promise<number>((resolve) =>
      server.on('close', (e) => {
        if (e.uid === 'slow') resolve(e.code);
      }),
    );
    let slowEvents = 0;
    let bufferedAtClose = -1;
    server.on('slowConsumer', (conn, uid) => {
      if (uid === 'slow') slowEvents++;
      bufferedAtClose = conn.bufferedBytes;
    });
    slow.ws.pause(); // stop reading: the kernel buffers fill, then the server's
    const chunk = 'y'.repeat(16 * 1024);
    let pushes = 0;
    let fastGot = 0;
    fast.ws.on('message', () => fastGot++);
    // Bounded: 8,000 x 16 KiB = 125 MiB at most, far past any loopback socket buffer.
    while (server.local.isOnline('slow') && pushes < 8000) {
      void server.broadcast(chunk);
      pushes++;
      await tick();
    }
    expect(server.local.isOnline('slow')).toBe(false);
    expect(slowEvents).toBe(1);
    expect(server.local.delivery.slowConsumersClosed).toBe(1);
    // The server held at most the cap for it, not everything that was pushed.
    expect(bufferedAtClose).toBeGreaterThan(0);
    expect(bufferedAtClose).toBeLessThanOrEqual(256 * 1024);
    expect(pushes).toBeLessThan(8000);
    // The healthy client keeps receiving everything, during and after.
    const fastAfter = receivedUntil(fast, () => fast.received.at(-1) === 'after', 10_000);
    void server.broadcast('after');
    await fastAfter;
    expect(fastGot).toBe(pushes + 1);
    // Once it reads again, the slow client sees the documented close code.
    slow.ws.resume();
    expect(await slow.closed(20_000)).toBe(CloseCode.SlowConsumer);
    expect(slow.closeReason).toBe('slow consumer: send buffer full');
    expect(await slowClosed).toBe(CloseCode.SlowConsumer);
  }, 60_000);

  it('with the drop policy skips the slow client without closing it', async () => {
    const { url, server } = await setup({ maxBufferedBytes: 64 * 1024, slowConsumerPolicy: 'drop' });
    const slow = await client(url, 'slow');
    slow.ws.pause();
    const chunk = 'z'.repeat(16 * 1024);
    let pushes = 0;
    while (server.local.delivery.framesDropped === 0 && pushes < 8000) {
      void server.push('slow', chunk);
      pushes++;
      await tick();
    }
    expect(server.local.delivery.framesDropped).toBeGreaterThan(0);
    expect(server.local.isOnline('slow')).toBe(true);
    // Everything but the dropped frame arrives, after the login reply.
    const allButOne = receivedUntil(slow, () => slow.received.length === 1 + pushes - 1, 20_000);
    slow.ws.resume();
    await allButOne;
    expect(server.local.delivery.framesDropped).toBe(1);
    expect(slow.closeCode).toBeUndefined();
  }, 60_000);
});

describe('heartbeat and timeouts', () => {
  it('removes a dead peer that stops answering pings', async () => {
    // Generous margins: the live client shares a possibly loaded CPU with the server.
    const { url, server } = await setup({ heartbeatInterval: 100, idleTimeout: 800 });
    const deadOffline = offlineOf(server, 'dead');
    const closes: { uid: string | undefined; code: number }[] = [];
    const firstClose = new Promise<void>((resolve) =>
      server.on('close', (e) => {
        closes.push({ uid: e.uid, code: e.code });
        resolve();
      }),
    );
    const dead = await client(url, 'dead', false); // never answers pings
    const alive = await client(url, 'alive');
    await deadOffline;
    expect(server.local.isOnline('dead')).toBe(false);
    expect(await dead.closed()).toBe(1006); // terminated: a dead peer gets no close frame
    // The uid goes offline at once; the close event follows when the socket has closed.
    await firstClose;
    expect(closes).toEqual([{ uid: 'dead', code: 1006 }]);
    // The live client answers every ping: after ten more (1 s of pings, past the 800 ms idle
    // timeout) it is still here.
    await new Promise<void>((resolve) => {
      let pings = 0;
      const onPing = (): void => {
        if (++pings < 10) return;
        alive.ws.off('ping', onPing);
        resolve();
      };
      alive.ws.on('ping', onPing);
    });
    expect(server.local.isOnline('alive')).toBe(true);
    expect(alive.closeCode).toBeUndefined();
  });

  it('pings every connection on the one shared timer', async () => {
    const { url } = await setup({ heartbeatInterval: 50, idleTimeout: 1000 });
    const a = await client(url, 'a');
    let pings = 0;
    await new Promise<void>((resolve) => {
      a.ws.on('ping', () => {
        if (++pings >= 3) resolve();
      });
    });
    expect(pings).toBeGreaterThanOrEqual(3);
  });

  it('closes a connection that does not log in within loginTimeout with 4002', async () => {
    const { url, server } = await setup({ loginTimeout: 100, heartbeatInterval: 50 });
    const lurker = await client(url);
    const member = await client(url, 'member');
    expect(await lurker.closed()).toBe(CloseCode.LoginTimeout);
    expect(lurker.closeReason).toBe('login timeout');
    expect(server.local.isOnline('member')).toBe(true);
    expect(member.closeCode).toBeUndefined();
  });
});

describe('shutdown', () => {
  it('closes every client with 1001 and stops accepting', async () => {
    const s = await setup();
    const a = await client(s.url, 'a');
    const b = await client(s.url);
    await s.stop();
    expect(await a.closed()).toBe(CloseCode.GoingAway);
    expect(await b.closed()).toBe(CloseCode.GoingAway);
    expect(a.closeReason).toBe('server shutting down');
    await expect(connect(s.url)).rejects.toThrow();
  });
});
