/**
 * Per-endpoint TLS: a client certificate for endpoints that require mutual TLS and an extra CA
 * bundle for endpoints behind a private CA. Certificates are checked when an endpoint is saved,
 * so a bad one is reported to the person who gave it rather than failing every delivery later.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { Agent } from 'undici';
import { guardedConnect } from './egress.ts';
import type { EgressPolicy } from './egress.ts';

export interface TlsOptions {
  /** PEM bundle trusted besides the default ones. */
  ca: string | null;
  /** PEM certificate (optionally followed by its intermediates) presented in the handshake. */
  clientCert: string | null;
  /** PEM private key of `clientCert`, unencrypted. */
  clientKey: string | null;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';

/**
 * Why a client certificate and key cannot be used (not PEM, key does not match, expired or not
 * yet valid, not meant for client authentication), or null. Never quotes the key.
 */
export function checkClientCertificate(cert: string, key: string, now: number = Date.now()): string | null {
  const x509 = readCertificate(cert, 'client certificate');
  if (typeof x509 === 'string') return x509;
  const privateKey = readPrivateKey(key);
  if (typeof privateKey === 'string') return privateKey;
  if (!x509.checkPrivateKey(privateKey)) return 'client key does not match the client certificate';
  if (x509.validToDate.getTime() < now) return `client certificate expired on ${x509.validToDate.toISOString()}`;
  if (x509.validFromDate.getTime() > now) return `client certificate is not valid before ${x509.validFromDate.toISOString()}`;
  // No extended key usage means any use; one without clientAuth makes servers refuse the handshake.
  const usages = x509.keyUsage;
  if (Array.isArray(usages) && usages.length > 0 && !usages.includes(CLIENT_AUTH_OID)) {
    return 'client certificate is not meant for client authentication (its extended key usage lacks clientAuth)';
  }
  return null;
}

/** Why a CA bundle cannot be used (no certificate in it, or one that does not parse), or null. */
export function checkCaBundle(pem: string): string | null {
  const certs = pem.match(PEM_CERT);
  if (certs === null) return 'CA bundle holds no PEM certificate (-----BEGIN CERTIFICATE-----)';
  for (const [i, cert] of certs.entries()) {
    const problem = readCertificate(cert, `CA bundle certificate ${i + 1}`);
    if (typeof problem === 'string') return problem;
  }
  return null;
}

/**
 * An undici Agent for one endpoint: presents the client certificate, trusts the extra CA bundle
 * besides the default ones, and opens every socket through the egress guard.
 */
export function createEndpointAgent(options: { policy: EgressPolicy; tls: TlsOptions; connections?: number }): Agent {
  return new Agent({
    connections: options.connections ?? 256,
    keepAliveTimeout: 10_000,
    keepAliveMaxTimeout: 60_000,
    connect: guardedConnect(options.policy, options.tls),
  });
}

function readCertificate(pem: string, what: string): X509Certificate | string {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) return `${what} is not a PEM certificate (-----BEGIN CERTIFICATE-----)`;
  try {
    return new X509Certificate(pem);
  } catch (err) {
    return `${what} cannot be read: ${(err as Error).message}`;
  }
}

function readPrivateKey(pem: string): KeyObject | string {
  if (/ENCRYPTED/.test(pem)) return 'client key is encrypted; give it without a passphrase';
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) return 'client key is not a PEM private key (-----BEGIN PRIVATE KEY-----)';
  try {
    return createPrivateKey(pem);
  } catch {
    // OpenSSL's message adds nothing an operator can act on, and the key must not be echoed.
    return 'client key is not a readable PEM private key';
  }
}
