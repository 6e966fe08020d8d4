import { describe, expect, it } from 'vitest';
import { cidrProblem, egressProblem } from '../../../src/delivery/egress.ts';
import type { EgressPolicy } from '../../../src/delivery/egress.ts';

const DEFAULT: EgressPolicy = { allow: [], block: [] };

describe('egressProblem with the default policy', () => {
  it.each([
    ['127.0.0.1', 'a loopback address (127.0.0.0/8)'],
    ['127.255.255.254', 'a loopback address (127.0.0.0/8)'],
    ['::1', 'a loopback address (::1/128)'],
    ['169.254.169.254', 'a link-local address (169.254.0.0/16)'],
    ['169.254.0.1', 'a link-local address (169.254.0.0/16)'],
    ['fe80::1', 'a link-local address (fe80::/10)'],
    ['fe80::1%eth0', 'a link-local address (fe80::/10)'],
    ['febf:ffff::1', 'a link-local address (fe80::/10)'],
    ['10.0.0.1', 'a private address (10.0.0.0/8)'],
    ['10.255.255.255', 'a private address (10.0.0.0/8)'],
    ['172.16.0.1', 'a private address (172.16.0.0/12)'],
    ['172.31.255.255', 'a private address (172.16.0.0/12)'],
    ['192.168.1.1', 'a private address (192.168.0.0/16)'],
    ['fc00::1', 'a unique local (private) address (fc00::/7)'],
    ['fd12:3456::1', 'a unique local (private) address (fc00::/7)'],
    ['fec0::1', 'a site-local (private) address (fec0::/10)'],
    ['100.64.0.1', 'a shared (CGNAT) address (100.64.0.0/10)'],
    ['100.127.255.255', 'a shared (CGNAT) address (100.64.0.0/10)'],
    ['0.0.0.0', 'an unspecified address (0.0.0.0/8)'],
    ['0.1.2.3', 'an unspecified address (0.0.0.0/8)'],
    ['::', 'an unspecified address (::/128)'],
    ['224.0.0.1', 'a multicast address (224.0.0.0/4)'],
    ['239.255.255.250', 'a multicast address (224.0.0.0/4)'],
    ['ff02::1', 'a multicast address (ff00::/8)'],
    ['255.255.255.255', 'the broadcast address (255.255.255.255/32)'],
    ['240.0.0.1', 'a reserved address (240.0.0.0/4)'],
    ['::7f00:1', 'a reserved address (::/96)'],
    ['192.0.0.170', 'an IETF protocol assignment address (192.0.0.0/24)'],
    ['198.19.255.1', 'a benchmarking address (198.18.0.0/15)'],
    ['203.0.113.9', 'a documentation address (203.0.113.0/24)'],
    ['2002:7f00:1::1', 'a 6to4 tunnel address (2002::/16)'],
    ['2001:0:4136:e378::1', 'a Teredo tunnel address (2001::/32)'],
    ['2001:db8::1', 'a documentation address (2001:db8::/32)'],
  ])('refuses %s as %s', (address, what) => {
    expect(egressProblem(DEFAULT, address)).toBe(`${address} is ${what}; allow it in egress.allow`);
  });

  it.each([
    ['::ffff:127.0.0.1', '127.0.0.1', 'a loopback address (127.0.0.0/8)'],
    ['::ffff:7f00:1', '127.0.0.1', 'a loopback address (127.0.0.0/8)'],
    ['::ffff:169.254.169.254', '169.254.169.254', 'a link-local address (169.254.0.0/16)'],
    ['::ffff:10.1.2.3', '10.1.2.3', 'a private address (10.0.0.0/8)'],
    ['::FFFF:C0A8:0101', '192.168.1.1', 'a private address (192.168.0.0/16)'],
    ['64:ff9b::10.0.0.1', '10.0.0.1', 'a private address (10.0.0.0/8)'],
  ])('refuses the IPv4 address inside %s', (address, inner, what) => {
    expect(egressProblem(DEFAULT, address)).toBe(`${address} carries ${inner}, ${what}; allow it in egress.allow`);
  });

  it.each([
    '8.8.8.8',
    '1.1.1.1',
    '172.15.255.255',
    '172.32.0.0',
    '100.63.255.255',
    '100.128.0.0',
    '169.253.255.255',
    '192.169.0.1',
    '11.0.0.1',
    '223.255.255.255',
    '2606:4700:4700::1111',
    '2a00:1450:4001::1',
    '::ffff:8.8.8.8',
    '64:ff9b::8.8.8.8',
  ])('lets the public address %s pass', (address) => {
    expect(egressProblem(DEFAULT, address)).toBeNull();
  });

  it('refuses what is not an IP address', () => {
    expect(egressProblem(DEFAULT, 'localhost')).toBe('"localhost" is not an IP address');
    expect(egressProblem(DEFAULT, '127.1')).toBe('"127.1" is not an IP address');
  });
});

describe('egressProblem with allow and block lists', () => {
  it('lets allow open a default range, and only that range', () => {
    const policy = { allow: ['127.0.0.0/8', '10.1.0.0/16'], block: [] };
    expect(egressProblem(policy, '127.0.0.1')).toBeNull();
    expect(egressProblem(policy, '10.1.200.3')).toBeNull();
    expect(egressProblem(policy, '10.2.0.1')).toMatch(/^10\.2\.0\.1 is a private address/);
    expect(egressProblem(policy, '::1')).toMatch(/^::1 is a loopback address/);
  });

  it('applies an IPv4 allow entry to the same address written as IPv4-mapped IPv6', () => {
    expect(egressProblem({ allow: ['127.0.0.1'], block: [] }, '::ffff:127.0.0.1')).toBeNull();
  });

  it('takes a bare address as a single host', () => {
    const policy = { allow: ['192.168.1.10', '::1'], block: [] };
    expect(egressProblem(policy, '192.168.1.10')).toBeNull();
    expect(egressProblem(policy, '192.168.1.11')).toMatch(/private address/);
    expect(egressProblem(policy, '::1')).toBeNull();
  });

  it('lets block win over allow and over public addresses', () => {
    const policy = { allow: ['10.0.0.0/8'], block: ['10.9.0.0/16', '203.0.113.0/24', '2001:db8::/32'] };
    expect(egressProblem(policy, '10.9.1.1')).toBe('10.9.1.1 is blocked by egress.block (10.9.0.0/16)');
    expect(egressProblem(policy, '10.8.1.1')).toBeNull();
    expect(egressProblem(policy, '203.0.113.7')).toBe('203.0.113.7 is blocked by egress.block (203.0.113.0/24)');
    expect(egressProblem(policy, '::ffff:203.0.113.7')).toBe('::ffff:203.0.113.7 is blocked by egress.block (203.0.113.0/24)');
    expect(egressProblem(policy, '2001:db8:1::5')).toBe('2001:db8:1::5 is blocked by egress.block (2001:db8::/32)');
    expect(egressProblem(policy, '8.8.8.8')).toBeNull();
  });

  it('matches on the prefix bits only', () => {
    expect(egressProblem({ allow: [], block: ['8.8.8.8/31'] }, '8.8.8.9')).toMatch(/blocked/);
    expect(egressProblem({ allow: [], block: ['8.8.8.8/31'] }, '8.8.8.10')).toBeNull();
    expect(egressProblem({ allow: [], block: ['0.0.0.0/0'] }, '1.2.3.4')).toMatch(/blocked/);
    expect(egressProblem({ allow: [], block: ['0.0.0.0/0'] }, '2606:4700::1')).toBeNull();
    expect(egressProblem({ allow: [], block: ['::/0'] }, '2606:4700::1')).toMatch(/blocked/);
  });

  it('refuses a policy entry that is not a CIDR, naming it', () => {
    expect(() => egressProblem({ allow: ['10.0.0.0/8', '10.0.0.0/33'], block: [] }, '8.8.8.8')).toThrow(
      'egress.allow[1] must be an IP address or CIDR such as 10.0.0.0/8 or fd00::/8 (got "10.0.0.0/33")',
    );
    expect(() => egressProblem({ allow: [], block: ['example.com'] }, '8.8.8.8')).toThrow(/egress\.block\[0\]/);
  });
});

describe('cidrProblem', () => {
  it.each(['10.0.0.0/8', '10.0.0.1', '::/0', 'fd00::/8', '::ffff:127.0.0.0/104', '0.0.0.0/0'])('accepts %s', (text) => {
    expect(cidrProblem(text)).toBeNull();
  });

  it.each(['', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/33', '::/129', '10.0.0/8', 'fd00::/x', 'localhost'])('refuses %j', (text) => {
    expect(cidrProblem(text)).toMatch(/^must be an IP address or CIDR/);
  });
});
