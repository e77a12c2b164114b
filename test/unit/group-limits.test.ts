import { afterEach, describe, expect, it } from 'vitest';
import { MemoryCluster } from '../../src/broker/memory.js';
import { ProgramErrorCode, UidpushError } from '../../src/core/errors.js';
import { GroupIndex } from '../../src/registry/groups.js';
import { createServer, type UidpushServer } from '../../src/index.js';

const limits = { maxGroupsPerUid: 2, maxMembersPerGroup: 3 };

describe('GroupIndex.join', () => {
  it('adds within the caps, never refuses an existing membership, and refuses a full uid or group', () => {
    const index = new GroupIndex();
    expect(index.join('a', 'u', limits)).toBe('added');
    expect(index.join('b', 'u', limits)).toBe('added');
    expect(index.join('a', 'u', limits)).toBe('member');
    expect(index.join('c', 'u', limits)).toBe('uid_full');
    expect(index.groupsOf('u').size).toBe(2);
    expect(index.join('a', 'v', limits)).toBe('added');
    expect(index.join('a', 'w', limits)).toBe('added');
    expect(index.join('a', 'x', limits)).toBe('group_full');
    expect(index.members('a').size).toBe(3);
    expect(index.groupsOf('x').size).toBe(0);
    index.remove('a', 'v');
    expect(index.join('a', 'x', limits)).toBe('added');
  });
});

describe('the membership store caps (MemoryCluster)', () => {
  it('adds within the caps, never refuses an existing membership, and refuses a full uid or group, changing nothing', async () => {
    const store = new MemoryCluster().createBroker().membership;
    expect(await store.addMember('a', 'u', limits)).toBe('added');
    expect(await store.addMember('b', 'u', limits)).toBe('added');
    expect(await store.addMember('a', 'u', limits)).toBe('member');
    expect(await store.addMember('c', 'u', limits)).toBe('uid_full');
    expect((await store.groupsOf('u')).sort()).toEqual(['a', 'b']);
    expect(await store.members('c')).toEqual([]);
    expect(await store.addMember('a', 'v', limits)).toBe('added');
    expect(await store.addMember('a', 'w', limits)).toBe('added');
    expect(await store.addMember('a', 'x', limits)).toBe('group_full');
    expect((await store.members('a')).sort()).toEqual(['u', 'v', 'w']);
    expect(await store.groupsOf('x')).toEqual([]);
    expect(await store.removeMember('a', 'v')).toBe(true);
    expect(await store.addMember('a', 'x', limits)).toBe('added');
  });

  it('shares the caps between the nodes of one cluster', async () => {
    const cluster = new MemoryCluster();
    const one = cluster.createBroker('one').membership;
    const two = cluster.createBroker('two').membership;
    expect(await one.addMember('a', 'u', limits)).toBe('added');
    expect(await two.addMember('b', 'u', limits)).toBe('added');
    expect(await two.addMember('c', 'u', limits)).toBe('uid_full');
    expect((await one.groupsOf('u')).sort()).toEqual(['a', 'b']);
  });
});

describe('server.join caps', () => {
  let server: UidpushServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('rejects with UIDPUSH_ERR_LIMIT_EXCEEDED past a cap and changes nothing', async () => {
    server = createServer({ ...limits });
    expect(await server.join('a', 'u')).toBe(true);
    expect(await server.join('b', 'u')).toBe(true);
    const thrown: unknown = await server.join('c', 'u').catch((err: unknown) => err);
    expect(thrown).toBeInstanceOf(UidpushError);
    expect((thrown as UidpushError).code).toBe(ProgramErrorCode.LimitExceeded);
    expect((thrown as UidpushError).message).toContain('maxGroupsPerUid');
    expect((await server.groupInfo('c')).members).toBe(0);
    expect(await server.join('a', 'u')).toBe(false);
    expect(await server.leaveAll('u')).toBe(2);
  });

  it('leaves every group of a uid at once', async () => {
    server = createServer({ maxGroupsPerUid: 100 });
    for (let i = 0; i < 50; i++) expect(await server.join(`g${i}`, 'u')).toBe(true);
    expect(await server.leaveAll('u')).toBe(50);
    expect((await server.groupInfo('g1')).members).toBe(0);
    expect(await server.leaveAll('u')).toBe(0);
  });
});
