import { describe, expect, it } from 'vitest';
import { ProgramErrorCode, UidpushError } from '../../src/core/errors.js';
import { Hub, type Recipient } from '../../src/delivery/hub.js';
import { GroupIndex } from '../../src/registry/groups.js';
import { Registry } from '../../src/registry/registry.js';

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

describe('Hub.join caps', () => {
  const hub = (groupLimits?: typeof limits): Hub =>
    new Hub(new Registry<Recipient>(), { maxBufferedBytes: 1024, slowConsumerPolicy: 'close', groupLimits });

  it('throws UIDPUSH_ERR_LIMIT_EXCEEDED past a cap and changes nothing', () => {
    const h = hub(limits);
    expect(h.join('a', 'u')).toBe(true);
    expect(h.join('b', 'u')).toBe(true);
    let thrown: unknown;
    try {
      h.join('c', 'u');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UidpushError);
    expect((thrown as UidpushError).code).toBe(ProgramErrorCode.LimitExceeded);
    expect((thrown as UidpushError).message).toContain('maxGroupsPerUid');
    expect(h.groupsOf('u').sort()).toEqual(['a', 'b']);
    expect(h.join('a', 'u')).toBe(false);
  });

  it('leaves every group of a uid at once, and has no caps without limits', () => {
    const h = hub();
    for (let i = 0; i < 50; i++) h.join(`g${i}`, 'u');
    expect(h.leaveAll('u')).toBe(50);
    expect(h.groupsOf('u')).toEqual([]);
    expect(h.group('g1').members).toBe(0);
    expect(h.leaveAll('u')).toBe(0);
  });
});
