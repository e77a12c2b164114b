import { describe, expect, it } from 'vitest';
import { checkAck, checkDevice, checkPosition, deliveryText, parseDelivery, planRecovery, type InboxOpened } from '../../src/core/inbox.js';

const inbox = (top: number, lowest: number, cursor: number | null = null): InboxOpened => ({ epoch: 'e1', top, lowest, cursor });

describe('planRecovery', () => {
  it('replays after the position sent when every missed offset is retained', () => {
    expect(planRecovery(inbox(10, 3), { epoch: 'e1', offset: 2 })).toEqual({ recovered: true, after: 2 });
    expect(planRecovery(inbox(10, 3), { epoch: 'e1', offset: 10 })).toEqual({ recovered: true, after: 10 });
  });

  it('refuses to replay part: a missed offset below the lowest retained is expired, from the top', () => {
    expect(planRecovery(inbox(10, 4), { epoch: 'e1', offset: 2 })).toEqual({ recovered: false, reason: 'expired', after: 10 });
  });

  it('answers a missed-nothing device as recovered even when all data expired (meta outlives data)', () => {
    expect(planRecovery(inbox(10, 11), { epoch: 'e1', offset: 10 })).toEqual({ recovered: true, after: 10 });
  });

  it('starts a device of another epoch at the top, not recovered', () => {
    expect(planRecovery(inbox(10, 1), { epoch: 'other', offset: 3 })).toEqual({ recovered: false, reason: 'epoch_changed', after: 10 });
  });

  it('refuses a position beyond the top of its own epoch', () => {
    expect(planRecovery(inbox(10, 1), { epoch: 'e1', offset: 11 })).toEqual({ refused: 'since.offset 11 is beyond the inbox top 10' });
  });

  it('uses the cursor of a known device without a position, and the top for a new one', () => {
    expect(planRecovery(inbox(10, 1, 7), undefined)).toEqual({ recovered: true, after: 7 });
    expect(planRecovery(inbox(10, 1, null), undefined)).toEqual({ recovered: true, after: 10 });
    expect(planRecovery(inbox(10, 9, 7), undefined)).toEqual({ recovered: false, reason: 'expired', after: 10 });
  });
});

describe('the inbox input rules', () => {
  it('parses the three delivery classes and refuses the rest', () => {
    expect(parseDelivery('durable')).toEqual({ kind: 'durable' });
    expect(parseDelivery('ephemeral')).toEqual({ kind: 'ephemeral' });
    expect(parseDelivery('latest:score')).toEqual({ kind: 'latest', key: 'score' });
    expect(deliveryText({ kind: 'latest', key: 'a:b' })).toBe('latest:a:b');
    expect(parseDelivery('latest:')).toBe('latest key is empty');
    expect(parseDelivery(`latest:${'k'.repeat(129)}`)).toBe('latest key is over 128 bytes');
    expect(parseDelivery('sometimes')).toMatch(/^unknown delivery class/);
  });

  it('checks devices and positions', () => {
    expect(checkDevice('phone-1.a:b_c')).toBeUndefined();
    expect(checkDevice('')).toBe('device is empty');
    expect(checkDevice('é')).toMatch(/only letters/);
    expect(checkPosition({ epoch: 'e', offset: 0 })).toBeUndefined();
    expect(checkPosition({ epoch: '', offset: 0 })).toMatch(/since.epoch/);
    expect(checkPosition({ epoch: 'e', offset: 1.5 })).toMatch(/since.offset/);
  });

  it('moves a cursor forward only, up to the top, for a known device', () => {
    expect(checkAck(3, 10, 5)).toEqual({ ok: true, cursor: 5 });
    expect(checkAck(3, 10, 3)).toEqual({ ok: true, cursor: 3 });
    expect(checkAck(3, 10, 2)).toEqual({ ok: false, reason: 'backwards', cursor: 3, top: 10 });
    expect(checkAck(3, 10, 11)).toEqual({ ok: false, reason: 'beyond_top', cursor: 3, top: 10 });
    expect(checkAck(null, 10, 1)).toEqual({ ok: false, reason: 'unknown_device', cursor: 0, top: 10 });
  });
});
