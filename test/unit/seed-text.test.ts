import { describe, expect, it } from 'vitest';
import { checkUid, errorLine, loginReply, parseCommand } from '../../src/protocol/seed-text.js';

const parse = (s: string, max = 128) => {
  const c = parseCommand(Buffer.from(s), max);
  return c.kind === 'error' ? c : { ...c, message: c.message.toString() };
};

describe('seed text protocol codec', () => {
  it('parses <uid>:<message>', () => {
    expect(parse('bob:hi')).toEqual({ kind: 'push', uid: 'bob', message: 'hi' });
  });
  it('splits on the first colon only', () => {
    expect(parse('bob:a:b')).toEqual({ kind: 'push', uid: 'bob', message: 'a:b' });
  });
  it('parses all:<message> as a broadcast', () => {
    expect(parse('all:yo')).toEqual({ kind: 'broadcast', message: 'yo' });
  });
  it('keeps an empty message', () => {
    expect(parse('bob:')).toEqual({ kind: 'push', uid: 'bob', message: '' });
  });
  it('refuses a message with no colon', () => {
    expect(parse('bob')).toMatchObject({ kind: 'error', code: 'bad_request' });
  });
  it('refuses an empty uid', () => {
    expect(parse(':x')).toMatchObject({ kind: 'error', text: 'empty uid' });
  });
  it('refuses a target uid over the cap, counted in bytes', () => {
    expect(parse('ééé:x', 5)).toMatchObject({ kind: 'error', text: 'uid longer than 5 bytes' });
    expect(parse('éé:x', 4)).toMatchObject({ kind: 'push', uid: 'éé' });
  });
  it('formats the login reply and error lines', () => {
    expect(loginReply('alice')).toBe('login success, your uid is alice');
    expect(errorLine('too_large', 'big')).toBe('error: too_large big');
  });
  it('checks uids', () => {
    expect(checkUid('alice', 128)).toBeUndefined();
    expect(checkUid('', 128)).toBe('empty uid');
    expect(checkUid('all', 128)).toMatch(/reserved/);
    expect(checkUid('a:b', 128)).toMatch(/':'/);
    expect(checkUid('a\u0000', 128)).toMatch(/control/);
    expect(checkUid('a\u007f', 128)).toMatch(/control/);
    expect(checkUid('x'.repeat(129), 128)).toMatch(/longer/);
    expect(checkUid('é'.repeat(65), 128)).toMatch(/longer/);
  });
});
