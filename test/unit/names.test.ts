import { describe, expect, it } from 'vitest';
import { checkGroup, checkName, checkUid } from '../../src/core/names.js';

describe('name rules', () => {
  const refused: [string, string, RegExp][] = [
    ['an empty name', '', /^empty uid$/],
    ['a colon', 'a:b', /must not contain ':'/],
    ['NUL', 'a\u0000b', /control characters/],
    ['a newline', 'line\nbreak', /control characters/],
    ['ESC', '\u001b[31mred', /control characters/],
    ['DEL', 'a\u007f', /control characters/],
    ['a C1 control (U+0080)', 'a\u0080', /C1 control characters \(U\+0080-U\+009F\)/],
    ['a C1 control (U+009F)', '\u009fa', /C1 control characters/],
    ['U+2028', 'a\u2028b', /line or paragraph separators/],
    ['U+2029', 'a\u2029b', /line or paragraph separators/],
    ['a bidi override (U+202E)', 'user\u202Egnp.exe', /bidirectional overrides \(U\+202A-U\+202E\)/],
    ['a bidi embedding (U+202A)', '\u202Aa', /bidirectional overrides/],
    ['a bidi isolate (U+2066)', 'a\u2066b', /bidirectional isolates \(U\+2066-U\+2069\)/],
    ['a bidi isolate (U+2069)', 'a\u2069', /bidirectional isolates/],
    ['a lone high surrogate', '\ud800', /lone surrogate/],
    ['a lone high surrogate before a letter', '\ud83dx', /lone surrogate/],
    ['a lone low surrogate', 'a\udc00', /lone surrogate/],
    ['reversed surrogates', '\ude00\ud83d', /lone surrogate/],
    ['over the byte cap in code units', 'x'.repeat(129), /uid longer than 128 bytes/],
    ['over the byte cap in UTF-8 bytes', 'é'.repeat(65), /uid longer than 128 bytes/],
    ['over the byte cap with 4-byte characters', '😀'.repeat(33), /uid longer than 128 bytes/],
    ['the broadcast address', 'all', /'all' is reserved for broadcast/],
  ];

  it.each(refused)('refuses %s as a uid, naming the rule', (_name, uid, reason) => {
    expect(checkUid(uid, 128)).toMatch(reason);
  });

  const valid = [
    'alice',
    'user 42',
    ' padded ',
    'Ωμέγα',
    '李小龙',
    'こんにちは',
    '😀🎉',
    '👩‍👩‍👧',
    'a-b_c.d@e',
    'ALL',
    'all ',
    'x'.repeat(128),
    '😀'.repeat(32),
    'é'.repeat(64),
    '\u00a0nbsp',
    '\u00ff',
  ];
  it.each(valid)('accepts %j', (name) => {
    expect(checkUid(name, 128)).toBeUndefined();
    expect(checkGroup(name, 128)).toBeUndefined();
  });

  it('applies the uid rules to groups, except that a group may be called all', () => {
    expect(checkGroup('all', 128)).toBeUndefined();
    expect(checkGroup('', 128)).toBe('empty group');
    expect(checkGroup('a:b', 128)).toBe("group must not contain ':'");
    expect(checkGroup('a\u202eb', 128)).toMatch(/^group must not contain bidirectional overrides/);
    expect(checkGroup('\ud800', 128)).toMatch(/^group must not contain a lone surrogate/);
  });

  it('counts UTF-8 bytes exactly at the cap', () => {
    expect(checkName('éé', 'uid', 4)).toBeUndefined();
    expect(checkName('ééa', 'uid', 4)).toBe('uid longer than 4 bytes');
    expect(checkName('😀', 'uid', 4)).toBeUndefined();
    expect(checkName('a😀', 'uid', 4)).toBe('uid longer than 4 bytes');
    expect(checkName('中', 'uid', 2)).toBe('uid longer than 2 bytes');
  });

  it('agrees with Buffer.byteLength on every well-formed name it accepts', () => {
    const samples = ['a', 'é', '中', '😀', 'a😀é中', '\u07ff\u0800\uffff', '\u{10ffff}'];
    for (const s of samples) {
      const bytes = Buffer.byteLength(s);
      expect(checkUid(s, bytes)).toBeUndefined();
      expect(checkUid(s, bytes - 1)).toMatch(/longer than/);
    }
  });
});
