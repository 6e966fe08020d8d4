/**
 * The egress guard: endpoint URLs are chosen by API users, so without it Wharf would POST wherever
 * they point, including its own loopback, the cloud metadata service and the private network it
 * runs in (SSRF). Addresses are judged where the socket is opened, after DNS, so a name that
 * resolves to a public address when the endpoint is saved and to 10.0.0.1 later (DNS rebinding)
 * is still refused.
 */
import { promises as dnsPromises } from 'node:dns';
import type { LookupAddress } from 'node:dns';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import type { LookupFunction } from 'node:net';
import { getCACertificates } from 'node:tls';
import { buildConnector } from 'undici';
import { ConfigError, WharfError } from '../core/errors.ts';
import type { TlsOptions } from './tls.ts';
import type { EgressGuard } from '../core/connector.ts';

/** CIDR lists from config (`egress.allow`, `egress.block`); a bare address counts as /32 or /128. */
export interface EgressPolicy {
  allow: string[];
  block: string[];
}

export const EGRESS_BLOCKED = 'WHARF_ERR_EGRESS_BLOCKED';

interface Ip {
  family: 4 | 6;
  value: bigint;
}

interface Cidr extends Ip {
  prefix: number;
  text: string;
}

interface Range extends Cidr {
  /** Completes "<address> is …". */
  what: string;
}

const CONNECT_TIMEOUT_MS = 10_000;

// Order matters: the first match names the reason, so narrow ranges come before wide ones.
const DEFAULT_BLOCKED: readonly Range[] = [
  ['0.0.0.0/8', 'an unspecified address'],
  ['127.0.0.0/8', 'a loopback address'],
  ['169.254.0.0/16', 'a link-local address'],
  ['10.0.0.0/8', 'a private address'],
  ['172.16.0.0/12', 'a private address'],
  ['192.168.0.0/16', 'a private address'],
  ['100.64.0.0/10', 'a shared (CGNAT) address'],
  ['192.0.0.0/24', 'an IETF protocol assignment address'],
  ['198.18.0.0/15', 'a benchmarking address'],
  ['192.0.2.0/24', 'a documentation address'],
  ['198.51.100.0/24', 'a documentation address'],
  ['203.0.113.0/24', 'a documentation address'],
  ['224.0.0.0/4', 'a multicast address'],
  ['255.255.255.255/32', 'the broadcast address'],
  ['240.0.0.0/4', 'a reserved address'],
  ['::/128', 'an unspecified address'],
  ['::1/128', 'a loopback address'],
  ['fe80::/10', 'a link-local address'],
  ['fec0::/10', 'a site-local (private) address'],
  ['fc00::/7', 'a unique local (private) address'],
  ['ff00::/8', 'a multicast address'],
  // Tunnels that lead to an IPv4 address of the relay's choosing: judged unknowable, so refused.
  ['2002::/16', 'a 6to4 tunnel address'],
  ['2001::/32', 'a Teredo tunnel address'],
  ['2001:db8::/32', 'a documentation address'],
  // IPv4-compatible addresses (deprecated) are not routed; ::/128 and ::1/128 above name the common ones.
  ['::/96', 'a reserved address'],
].map(([text, what]) => ({ ...parseCidr(text!)!, what: what! }));

// IPv6 forms that carry an IPv4 address the packet really goes to: mapped (::ffff:a.b.c.d) and
// the NAT64 well-known prefix (64:ff9b::a.b.c.d, RFC 6052).
const EMBEDS_IPV4: readonly Cidr[] = [parseCidr('::ffff:0:0/96')!, parseCidr('64:ff9b::/96')!];

/**
 * Why `address` may not be reached (e.g. "127.0.0.1 is a loopback address (127.0.0.0/8); allow it
 * in egress.allow"), or null. `block` wins over everything, `allow` wins over the default ranges.
 * Throws a ConfigError naming the entry when the policy holds something that is not a CIDR.
 */
export function egressProblem(policy: EgressPolicy, address: string): string | null {
  return judge(compilePolicy(policy), address);
}

/** Why `text` is not a usable CIDR for egress.allow / egress.block, or null. */
export function cidrProblem(text: string): string | null {
  return parseCidr(text) === null
    ? `must be an IP address or CIDR such as 10.0.0.0/8 or fd00::/8 (got ${JSON.stringify(text)})`
    : null;
}

/**
 * An undici connector that judges every address before a socket is opened to it: IP literals
 * directly, names through a `lookup` that sees what DNS answered for this very connection.
 * Refusals fail the request with code WHARF_ERR_EGRESS_BLOCKED and the reason. `tls` adds the
 * endpoint's client certificate and extra CA bundle to the handshake; `resolve` replaces the
 * system resolver (tests use it to answer with chosen addresses).
 */
export function guardedConnect(
  policy: EgressPolicy,
  tls?: TlsOptions,
  options: { resolve?: Resolver } = {},
): buildConnector.connector {
  const compiled = compilePolicy(policy);
  const connect = buildConnector({
    timeout: CONNECT_TIMEOUT_MS,
    lookup: guardedLookup(compiled, options.resolve ?? systemResolver),
    ...tlsConnectOptions(tls),
  });
  return (target, callback) => {
    // net.connect skips `lookup` for IP literals, so those are judged here.
    if (isIP(target.hostname) !== 0) {
      const problem = judge(compiled, target.hostname);
      if (problem !== null) {
        queueMicrotask(() => callback(blocked(target.hostname, problem), null));
        return;
      }
    }
    connect(target, callback);
  };
}

/**
 * The guard broker connectors use (core/connector.ts): the same judgement as for webhooks, as a
 * `lookup` for the sockets an SDK opens, and a `check` to run before connecting (IP literals, and
 * SDKs such as gRPC that resolve on their own).
 */
export function egressGuard(policy: EgressPolicy, options: { resolve?: Resolver } = {}): EgressGuard {
  const compiled = compilePolicy(policy);
  const resolve = options.resolve ?? systemResolver;
  return {
    lookup: guardedLookup(compiled, resolve),
    refusal(host) {
      const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
      if (isIP(bare) === 0) return null;
      const problem = judge(compiled, bare);
      return problem === null ? null : blocked(bare, problem);
    },
    async check(host) {
      const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
      if (isIP(bare) !== 0) {
        const problem = judge(compiled, bare);
        if (problem !== null) throw blocked(bare, problem);
        return;
      }
      const addresses = await resolve(bare, {});
      const problems = addresses.map((a) => judge(compiled, a.address));
      if (!problems.includes(null)) throw blocked(bare, problems.find((p) => p !== null) ?? 'DNS answered no address');
    },
  };
}

interface CompiledPolicy {
  allow: Cidr[];
  block: Cidr[];
}

function compilePolicy(policy: EgressPolicy): CompiledPolicy {
  const compile = (list: string[], key: string): Cidr[] =>
    list.map((text, i) => {
      const cidr = parseCidr(text);
      if (cidr === null) throw new ConfigError(`egress.${key}[${i}] ${cidrProblem(text)}`, { key: `egress.${key}[${i}]` });
      return cidr;
    });
  return { allow: compile(policy.allow, 'allow'), block: compile(policy.block, 'block') };
}

function judge(policy: CompiledPolicy, address: string): string | null {
  const ip = parseIp(address);
  if (ip === null) return `${JSON.stringify(address)} is not an IP address`;
  const inner = embeddedIpv4(ip);
  const forms = inner === null ? [ip] : [ip, inner];
  const listed = (list: Cidr[]): Cidr | undefined => list.find((c) => forms.some((f) => contains(c, f)));

  const blockedBy = listed(policy.block);
  if (blockedBy) return `${address} is blocked by egress.block (${blockedBy.text})`;
  if (listed(policy.allow)) return null;
  const target = inner ?? ip;
  const range = DEFAULT_BLOCKED.find((r) => contains(r, target));
  if (!range) return null;
  const subject = inner === null ? `${address} is` : `${address} carries ${format(inner)},`;
  return `${subject} ${range.what} (${range.text}); allow it in egress.allow`;
}

/** Answers what a name resolves to, as dns.lookup with `all: true` does. */
export type Resolver = (hostname: string, options: { family?: number; hints?: number }) => Promise<LookupAddress[]>;

const systemResolver: Resolver = (hostname, options) =>
  dnsPromises.lookup(hostname, { family: options.family ?? 0, hints: options.hints, all: true });

/** Resolves, then drops refused addresses, so only judged addresses reach net.connect. */
function guardedLookup(policy: CompiledPolicy, resolve: Resolver): LookupFunction {
  return (hostname, options, callback) => {
    resolve(hostname, { family: familyNumber(options.family), hints: options.hints }).then(
      (addresses) => {
        // A name with one public and one private address keeps the public one: nothing refused is
        // ever dialled, and the delivery still reaches the host it was meant for.
        const problems = addresses.map((a) => judge(policy, a.address));
        const allowed = addresses.filter((_, i) => problems[i] === null);
        if (allowed.length === 0) {
          const reason = problems.find((p) => p !== null) ?? 'DNS answered no address';
          callback(blocked(hostname, reason), '', 0);
        } else if (options.all) {
          (callback as (e: null, a: LookupAddress[]) => void)(null, allowed);
        } else {
          callback(null, allowed[0]!.address, allowed[0]!.family);
        }
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 0),
    );
  };
}

function familyNumber(family: number | 'IPv4' | 'IPv6' | undefined): number | undefined {
  return family === 'IPv4' ? 4 : family === 'IPv6' ? 6 : family;
}

function blocked(host: string, reason: string): WharfError {
  return new WharfError(EGRESS_BLOCKED, `egress to ${host} refused: ${reason}`, { retryable: false });
}

/**
 * Giving `ca` replaces Node's trust store, so the defaults are put back beside the endpoint's
 * bundle; getCACertificates('default') also holds NODE_EXTRA_CA_CERTS and, with --use-system-ca,
 * the system store.
 */
function tlsConnectOptions(tls: TlsOptions | undefined): Record<string, unknown> {
  if (!tls) return {};
  const out: Record<string, unknown> = {};
  if (tls.ca !== null) out.ca = [...getCACertificates('default'), tls.ca];
  if (tls.clientCert !== null) out.cert = tls.clientCert;
  if (tls.clientKey !== null) out.key = tls.clientKey;
  return out;
}

function contains(range: Cidr, ip: Ip): boolean {
  if (range.family !== ip.family) return false;
  const shift = BigInt((range.family === 4 ? 32 : 128) - range.prefix);
  return range.value >> shift === ip.value >> shift;
}

function embeddedIpv4(ip: Ip): Ip | null {
  if (ip.family !== 6 || !EMBEDS_IPV4.some((c) => contains(c, ip))) return null;
  return { family: 4, value: ip.value & 0xffffffffn };
}

function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  const ip = parseIp(slash === -1 ? text : text.slice(0, slash));
  if (ip === null) return null;
  const bits = ip.family === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(bits) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > bits) return null;
  return { ...ip, prefix: Number(prefixText), text: slash === -1 ? `${text}/${bits}` : text };
}

function parseIp(text: string): Ip | null {
  if (isIPv4(text)) return { family: 4, value: BigInt(ipv4Number(text)) };
  // A zone (fe80::1%eth0) says which interface, not which address.
  const bare = text.split('%')[0]!;
  if (!isIPv6(bare)) return null;
  return { family: 6, value: ipv6Number(bare) };
}

function ipv4Number(text: string): number {
  return text.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function ipv6Number(text: string): bigint {
  let s = text;
  const tail = s.slice(s.lastIndexOf(':') + 1);
  if (tail.includes('.')) {
    // Written with a dotted IPv4 tail (::ffff:1.2.3.4): turn it into two hex groups.
    const n = ipv4Number(tail);
    s = `${s.slice(0, s.length - tail.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const before = head === '' ? [] : head.split(':');
  const after = rest === undefined || rest === '' ? [] : rest.split(':');
  const zeros = rest === undefined ? [] : new Array<string>(8 - before.length - after.length).fill('0');
  return [...before, ...zeros, ...after].reduce((n, group) => (n << 16n) | BigInt(parseInt(group, 16)), 0n);
}

function format(ip: Ip): string {
  const n = Number(ip.value);
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
