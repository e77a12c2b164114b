import { afterEach, describe, expect, it } from 'vitest';
import { connectV1, testBed, type TestClient } from '../helpers/clients.js';

const { setup, client, cleanup } = testBed();
const opened: TestClient[] = [];
afterEach(async () => {
  for (const c of opened.splice(0)) c.close();
  await cleanup();
});

async function v1(url: string, uid: string): Promise<TestClient> {
  const c = await connectV1(url);
  opened.push(c);
  c.sendJson({ type: 'auth', uid });
  await c.nextJson();
  return c;
}

describe('group caps against a client that joins without end', () => {
  it('keeps one uid to maxGroupsPerUid groups however many joins it sends; the rest get limit_exceeded', async () => {
    const { url, server } = await setup({ maxGroupsPerUid: 50, rateLimit: 0 });
    const bystander = await client(url, 'bystander');
    const greedy = await v1(url, 'greedy');
    for (let i = 0; i < 300; i++) greedy.sendJson({ type: 'join', id: i, group: `spam-${i}` });
    const codes = new Map<string, number>();
    const acked: string[] = [];
    for (let i = 0; i < 300; i++) {
      const reply = await greedy.nextJson();
      expect(reply.id).toBe(i);
      if (reply.type === 'ack') acked.push(`spam-${i}`);
      const key = reply.type === 'ack' ? 'ack' : String(reply.code);
      codes.set(key, (codes.get(key) ?? 0) + 1);
    }
    expect(Object.fromEntries(codes)).toEqual({ ack: 50, limit_exceeded: 250 });
    const infos = await Promise.all(Array.from({ length: 300 }, (_, i) => server.groupInfo(`spam-${i}`)));
    expect(infos.filter((g) => g.members > 0).map((g) => g.group)).toEqual(acked);
    expect(infos.filter((g) => g.members > 0).every((g) => g.members === 1 && g.online === 1)).toBe(true);
    expect((await server.push('bystander', 'served')).connections).toBe(1);
    expect(await bystander.next()).toBe('served');
    // The refused client is still served too.
    greedy.sendJson({ type: 'ping', id: 'p' });
    expect(await greedy.nextJson()).toEqual({ type: 'pong', id: 'p' });
  });

  it('keeps one group to maxMembersPerGroup members, from clients and from the API', async () => {
    const { url, server } = await setup({ maxMembersPerGroup: 3 });
    const clients = await Promise.all(['m1', 'm2', 'm3', 'm4'].map((uid) => v1(url, uid)));
    for (const [i, c] of clients.entries()) c.sendJson({ type: 'join', id: i, group: 'room' });
    const replies = await Promise.all(clients.map((c) => c.nextJson()));
    expect(replies.filter((r) => r.type === 'ack')).toHaveLength(3);
    expect(replies.filter((r) => r.code === 'limit_exceeded')).toHaveLength(1);
    const api = `http://127.0.0.1:${server.address().api?.port ?? 0}`;
    const res = await fetch(`${api}/v1/groups/room/members/from-api`, { method: 'PUT' });
    expect(res.status).toBe(409);
    expect(await res.json()).toEqual({
      error: { code: 'limit_exceeded', message: 'group room already has 3 members (maxMembersPerGroup)' },
    });
    expect((await server.groupInfo('room')).members).toBe(3);
  });
});
