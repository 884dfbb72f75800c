import { describe, expect, it } from 'vitest';
import { AccessList, parseCidr } from '../../src/lib/index.js';

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', { address: '10.0.0.0', prefix: 8, family: 'IPv4' }],
    ['192.0.2.7', { address: '192.0.2.7', prefix: 32, family: 'IPv4' }],
    ['0.0.0.0/0', { address: '0.0.0.0', prefix: 0, family: 'IPv4' }],
    ['fe80::/10', { address: 'fe80::', prefix: 10, family: 'IPv6' }],
    ['::1', { address: '::1', prefix: 128, family: 'IPv6' }],
    ['2001:db8::/32', { address: '2001:db8::', prefix: 32, family: 'IPv6' }],
  ])('reads %s', (text, cidr) => {
    expect(parseCidr(text)).toEqual(cidr);
  });

  it.each([
    ['10.1.2.3/8', "'10.1.2.3/8' has bits set past its /8 prefix: did you mean 10.0.0.0/8?"],
    ['2001:db8::1/32', "'2001:db8::1/32' has bits set past its /32 prefix: did you mean 2001:db8::/32?"],
    ['10.0.0.0/33', "'10.0.0.0/33': the prefix length must be 0-32 for IPv4"],
    ['::/129', "'::/129': the prefix length must be 0-128 for IPv6"],
    ['10.0.0.0/', "'10.0.0.0/': the prefix length must be 0-32 for IPv4"],
    ['10.0.0.0/-1', "'10.0.0.0/-1': the prefix length must be 0-32 for IPv4"],
    ['example.com/8', "'example.com/8' is not an address block"],
    ['', "'' is not an address block"],
  ])('refuses %s', (text, message) => {
    expect(() => parseCidr(text)).toThrow(expect.objectContaining({ code: 'UDP_ERR_INVALID_ARG' }));
    expect(() => parseCidr(text)).toThrow(message);
  });
});

describe('AccessList', () => {
  it('takes the first rule that matches, in order', () => {
    const acl = new AccessList([
      { action: 'deny', cidr: '10.0.0.7' },
      { action: 'allow', cidr: '10.0.0.0/8' },
    ]);
    expect(acl.allows('10.0.0.7')).toBe(false);
    expect(acl.allows('10.9.9.9')).toBe(true);
    const reversed = new AccessList([
      { action: 'allow', cidr: '10.0.0.0/8' },
      { action: 'deny', cidr: '10.0.0.7' },
    ]);
    expect(reversed.allows('10.0.0.7')).toBe(true);
  });

  it('denies the rest once there is an allow rule, allows the rest when there are only denies', () => {
    const only = new AccessList([{ action: 'allow', cidr: '127.0.0.0/8' }]);
    expect(only.otherwise).toBe('deny');
    expect(only.allows('127.0.0.2')).toBe(true);
    expect(only.allows('192.0.2.1')).toBe(false);
    expect(only.allows('::1')).toBe(false);
    const deny = new AccessList([{ action: 'deny', cidr: '192.0.2.0/24' }]);
    expect(deny.otherwise).toBe('allow');
    expect(deny.allows('192.0.2.200')).toBe(false);
    expect(deny.allows('198.51.100.1')).toBe(true);
    expect(new AccessList([]).allows('203.0.113.9')).toBe(true);
  });

  it("matches IPv4-mapped senders against IPv4 rules, scoped IPv6 senders, and 'all'", () => {
    const acl = new AccessList([
      { action: 'deny', cidr: '127.0.0.5' },
      { action: 'allow', cidr: '127.0.0.0/8' },
      { action: 'allow', cidr: 'fe80::/10' },
    ]);
    expect(acl.allows('::ffff:127.0.0.1')).toBe(true);
    expect(acl.allows('::ffff:127.0.0.5')).toBe(false);
    expect(acl.allows('fe80::1%eth0')).toBe(true);
    expect(acl.allows('2001:db8::1')).toBe(false);
    const all = new AccessList([
      { action: 'deny', cidr: '::1' },
      { action: 'allow', cidr: 'all' },
    ]);
    expect(all.allows('::1')).toBe(false);
    expect(all.allows('203.0.113.9')).toBe(true);
  });

  it('gives the same verdict from its cache, for many senders', () => {
    const acl = new AccessList([{ action: 'allow', cidr: '10.0.0.0/9' }]);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 5000; i++) {
        const address = `10.${i % 256}.${(i >> 8) & 255}.1`;
        expect(acl.allows(address)).toBe(i % 256 < 128);
      }
    }
  });
});
