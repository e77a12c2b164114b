import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { offlineOf, receivedUntil, testBed, waitFor } from '../helpers/clients.js';

// A live gap on one node (memory engine): under `slowConsumerPolicy: 'drop'` a retained
// push dropped for a connection whose send buffer is full is not lost to it. The next one
// that reaches it does not follow its last offset, and the node fills the gap from the
// inbox, in band, without closing the connection.

type Json = Record<string, unknown>;

const bed = testBed();
afterEach(() => bed.cleanup());

describe('a live gap under the drop policy', { timeout: 60_000 }, () => {
  it('fills the pushes dropped for a slow device from the inbox in band: every offset once, in order, the connection open', async () => {
    const MAX_BUFFERED = 1024;
    // Each frame (~830 bytes) fits the cap, and two do not: once the kernel's buffers are
    // full, a frame is dropped whenever another is still waiting.
    const data = 'x'.repeat(700);
    const { url, server } = await bed.setup({
      inbox: true,
      inboxSize: 100_000,
      slowConsumerPolicy: 'drop',
      maxBufferedBytes: MAX_BUFFERED,
      rateLimit: 0,
    });
    const client = await bed.v1(url);
    client.sendJson({ type: 'auth', uid: 'sloth', device: 'phone' });
    const welcome = JSON.parse(await client.next()) as Json;
    expect(welcome).toMatchObject({ type: 'welcome', recovered: true, inbox: { offset: 0 } });
    const epoch = (welcome.inbox as Json).epoch as string;

    // The client stops reading: its kernel buffers fill, then the server's send buffer.
    const tcp = (client.ws as unknown as { _socket: Socket })._socket;
    tcp.pause();
    const dropped = (): number => server.local.delivery.framesDropped;
    let sent = 0;
    const push = async (): Promise<void> => {
      sent++;
      expect(await server.push('sloth', { n: sent, pad: data })).toMatchObject({ offset: sent, epoch });
    };
    // Push until the drop policy has skipped some for it (the stat, not a timer), then more.
    while (dropped() < 10) {
      await push();
      // Now and then, a turn of the event loop for the server's socket to flush (not a wait for time).
      if (sent % 200 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      expect(sent).toBeLessThan(100_000);
    }
    for (let i = 0; i < 50; i++) await push();
    expect(dropped()).toBeGreaterThanOrEqual(10);

    // The newest offset received, kept as frames come (parsing them all at each would be quadratic).
    let newest = 0;
    client.ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as Json;
      if (typeof frame.offset === 'number') newest = frame.offset;
    });
    tcp.resume();
    const offsets = (): number[] =>
      client.received
        .slice(1)
        .map((text) => JSON.parse(text) as Json)
        .filter((frame) => frame.type === 'message')
        .map((frame) => frame.offset as number);
    // One more push: whatever was dropped last has no later push to show the gap. That one
    // may be dropped too while the buffers drain, so push again until the newest arrives
    // (as untilReached does): the event waited for is delivery, not time.
    for (let tries = 0; ; tries++) {
      await push();
      try {
        await receivedUntil(client, () => newest === sent, 1000);
        break;
      } catch (err) {
        if (tries >= 20) throw err;
      }
    }

    const got = client.received.slice(1).map((text) => JSON.parse(text) as Json);
    expect(got.filter((frame) => frame.type !== 'message')).toEqual([]);
    expect(got.every((frame) => frame.epoch === epoch)).toBe(true);
    const seen = offsets();
    expect(seen.length).toBe(sent);
    expect(seen).toEqual(Array.from({ length: sent }, (_, i) => i + 1));
    expect(got.map((frame) => (frame.data as Json).n)).toEqual(seen);
    // Still connected and answering.
    expect(client.closeCode).toBeUndefined();
    expect(server.local.delivery.slowConsumersClosed).toBe(0);
    const before = client.received.length;
    client.sendJson({ type: 'ping', id: 'still' });
    await receivedUntil(client, () => client.received.length > before);
    expect(JSON.parse(client.received[before] ?? '')).toEqual({ type: 'pong', id: 'still' });
  });
});

describe('a login replay larger than the socket buffers', { timeout: 60_000 }, () => {
  it('is written in full to a device that reads slowly, under a small maxBufferedBytes, without tripping the slow-consumer policy', async () => {
    const { url, server } = await bed.setup({ inbox: true, inboxSize: 100_000, maxBufferedBytes: 1024, rateLimit: 0 });
    const first = await bed.v1(url);
    first.sendJson({ type: 'auth', uid: 'reader', device: 'tablet' });
    const welcome = JSON.parse(await first.next()) as Json;
    const epoch = (welcome.inbox as Json).epoch as string;
    const gone = offlineOf(server, 'reader');
    first.close();
    await gone;
    // More than the kernel's buffers hold on loopback (a few MB here), in frames of ~830
    // bytes: the replay waits for the socket to drain with far less than its 16 KiB
    // highWaterMark buffered, when Node emits no 'drain'.
    const missed = 12_000;
    for (let n = 1; n <= missed; n++) await server.push('reader', { n, pad: 'x'.repeat(700) });

    const serverSide = new Promise<Socket>((resolve) => {
      server.once('login', (conn: unknown) => {
        resolve((conn as { tcp: Socket }).tcp);
      });
    });
    const client = await bed.v1(url);
    let newest = 0;
    client.ws.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString('utf8')) as Json;
      if (typeof frame.offset === 'number') newest = frame.offset;
    });
    const tcp = (client.ws as unknown as { _socket: Socket })._socket;
    client.sendJson({ type: 'auth', uid: 'reader', device: 'tablet', since: { epoch, offset: 0 } });
    // Not reading while the replay is written: the kernel's buffers fill, then the server's.
    tcp.pause();
    const socket = await serverSide;
    // The kernel's buffers filling is no event: poll until the server holds bytes of its own.
    await waitFor(() => socket.writableLength > 0 || client.closeCode !== undefined, 20_000);
    tcp.resume();
    await receivedUntil(client, () => newest === missed || client.closeCode !== undefined, 30_000);
    expect(client.closeCode).toBeUndefined();
    expect(server.local.delivery.framesDropped).toBe(0);
    const got = client.received.map((text) => JSON.parse(text) as Json);
    expect(got[0]).toMatchObject({ type: 'welcome', recovered: true, missed });
    expect(got.slice(1).map((frame) => frame.offset)).toEqual(Array.from({ length: missed }, (_, i) => i + 1));
  });
});
