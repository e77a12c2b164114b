import { describe, expect, it } from 'vitest';
import { Registry } from '../../src/registry/registry.js';

const conn = (name: string) => ({ name });

describe('Registry', () => {
  it('binds a connection to a uid and reports the first connection', () => {
    const r = new Registry<{ name: string }>();
    const a = conn('a');
    expect(r.bind(a, 'alice')).toBe(true);
    expect(r.uidOf(a)).toBe('alice');
    expect(r.has('alice')).toBe(true);
    expect(r.countOf('alice')).toBe(1);
  });

  it('holds many connections per uid', () => {
    const r = new Registry<{ name: string }>();
    const [a, b, c] = [conn('a'), conn('b'), conn('c')];
    r.bind(a, 'alice');
    expect(r.bind(b, 'alice')).toBe(false);
    r.bind(c, 'alice');
    expect(r.countOf('alice')).toBe(3);
    expect(r.uidCount).toBe(1);
    expect(r.connectionCount).toBe(3);
    const seen: string[] = [];
    expect(r.forEachOf('alice', (x) => seen.push(x.name))).toBe(3);
    expect(seen.sort()).toEqual(['a', 'b', 'c']);
  });

  it('keeps the other connections of the uid bound when one is removed (the seed bug)', () => {
    const r = new Registry<{ name: string }>();
    const [phone, laptop] = [conn('phone'), conn('laptop')];
    r.bind(phone, 'alice');
    r.bind(laptop, 'alice');
    expect(r.unbind(phone)).toBe('alice');
    expect(r.has('alice')).toBe(true);
    const seen: string[] = [];
    r.forEachOf('alice', (x) => seen.push(x.name));
    expect(seen).toEqual(['laptop']);
  });

  it('leaves nothing behind after the last connection is removed', () => {
    const r = new Registry<{ name: string }>();
    const conns = Array.from({ length: 5 }, (_, i) => conn(String(i)));
    for (const c of conns) r.bind(c, 'alice');
    for (const c of conns) r.unbind(c);
    expect(r.has('alice')).toBe(false);
    expect(r.uidCount).toBe(0);
    expect(r.connectionCount).toBe(0);
    expect([...r.uids()]).toEqual([]);
    expect(r.unbind(conns[0] as { name: string })).toBeUndefined();
  });

  it('moves a connection bound again to another uid', () => {
    const r = new Registry<{ name: string }>();
    const a = conn('a');
    r.bind(a, 'alice');
    expect(r.bind(a, 'alice')).toBe(false);
    r.bind(a, 'bob');
    expect(r.has('alice')).toBe(false);
    expect(r.uidOf(a)).toBe('bob');
    expect(r.connectionCount).toBe(1);
  });

  it('lets a callback unbind the connection it is given', () => {
    const r = new Registry<{ name: string }>();
    const [a, b] = [conn('a'), conn('b')];
    r.bind(a, 'alice');
    r.bind(b, 'alice');
    expect(r.forEachOf('alice', (x) => r.unbind(x))).toBe(2);
    expect(r.has('alice')).toBe(false);
  });

  it('iterates all connections while they are unbound', () => {
    const r = new Registry<{ name: string }>();
    const conns = Array.from({ length: 4 }, (_, i) => conn(String(i)));
    conns.forEach((c, i) => r.bind(c, `u${i % 2}`));
    let n = 0;
    for (const c of r.connections()) {
      r.unbind(c);
      n++;
    }
    expect(n).toBe(4);
    expect(r.connectionCount).toBe(0);
  });
});

/** Records every listener call, in order, as one line each. */
function recorder(r: Registry<{ name: string }>): string[] {
  const events: string[] = [];
  r.listen({
    count: (uid, n) => events.push(`count ${uid} ${n}`),
    online: (uid) => events.push(`online ${uid}`),
    offline: (uid) => events.push(`offline ${uid}`),
    groupActive: (group) => events.push(`active ${group}`),
    groupIdle: (group) => events.push(`idle ${group}`),
  });
  return events;
}

describe('Registry events', () => {
  it('reports online before the first count, a count per bind and unbind, and offline after the last count', () => {
    const r = new Registry<{ name: string }>();
    const events = recorder(r);
    const [a, b] = [conn('a'), conn('b')];
    r.bind(a, 'alice');
    r.bind(b, 'alice');
    r.unbind(a);
    r.unbind(b);
    expect(events).toEqual(['online alice', 'count alice 1', 'count alice 2', 'count alice 1', 'count alice 0', 'offline alice']);
    expect(r.unbind(b)).toBeUndefined();
    expect(events).toHaveLength(6);
  });

  it('reports a moved connection as offline of the old uid and online of the new one', () => {
    const r = new Registry<{ name: string }>();
    const events = recorder(r);
    const a = conn('a');
    r.bind(a, 'alice');
    events.length = 0;
    r.bind(a, 'bob');
    expect(events).toEqual(['count alice 0', 'offline alice', 'online bob', 'count bob 1']);
  });

  it('reports a group active at its first local member and idle after its last', () => {
    const r = new Registry<{ name: string }>();
    const events = recorder(r);
    r.bind(conn('a'), 'alice');
    r.bind(conn('b'), 'bob');
    events.length = 0;
    expect(r.join('room', 'alice')).toBe(true);
    expect(r.join('room', 'bob')).toBe(true);
    expect(r.join('room', 'bob')).toBe(false);
    expect(events).toEqual(['active room']);
    expect(r.leave('room', 'alice')).toBe(true);
    expect(r.leave('room', 'alice')).toBe(false);
    expect(events).toEqual(['active room']);
    expect(r.leave('room', 'bob')).toBe(true);
    expect(events).toEqual(['active room', 'idle room']);
  });

  it('makes a uid leave its local groups when its last connection goes, before reporting it offline', () => {
    const r = new Registry<{ name: string }>();
    const events = recorder(r);
    const [a1, a2] = [conn('a1'), conn('a2')];
    r.bind(a1, 'alice');
    r.bind(a2, 'alice');
    r.bind(conn('b'), 'bob');
    r.join('solo', 'alice');
    r.join('shared', 'alice');
    r.join('shared', 'bob');
    r.unbind(a1);
    expect(r.isMember('solo', 'alice')).toBe(true);
    events.length = 0;
    r.unbind(a2);
    expect(events).toEqual(['count alice 0', 'idle solo', 'offline alice']);
    expect(r.groupsOf('alice').size).toBe(0);
    expect([...r.members('shared')]).toEqual(['bob']);
    expect(r.groupCount).toBe(1);
  });

  it('calls listeners in the order they were added', () => {
    const r = new Registry<{ name: string }>();
    const order: string[] = [];
    r.listen({ online: () => order.push('first') });
    r.listen({ online: () => order.push('second') });
    r.bind(conn('a'), 'alice');
    expect(order).toEqual(['first', 'second']);
  });
});

describe('Registry groups', () => {
  it('holds members of online uids only, answering members, groupsOf and isMember', () => {
    const r = new Registry<{ name: string }>();
    r.bind(conn('a'), 'alice');
    r.bind(conn('b'), 'bob');
    expect(r.join('room', 'carol')).toBe(false); // offline: the store's, not the registry's
    expect(r.isMember('room', 'carol')).toBe(false);
    r.join('room', 'alice');
    r.join('room', 'bob');
    r.join('hall', 'alice');
    expect([...r.members('room')].sort()).toEqual(['alice', 'bob']);
    expect([...r.groupsOf('alice')].sort()).toEqual(['hall', 'room']);
    expect(r.isMember('hall', 'bob')).toBe(false);
    expect(r.isMember('hall', 'alice')).toBe(true);
    expect(r.groupCount).toBe(2);
    expect(r.members('nowhere').size).toBe(0);
    expect(r.groupsOf('carol').size).toBe(0);
  });
});
