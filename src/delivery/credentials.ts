/**
 * An endpoint's credentials: how Wharf authenticates to it (`authentication`), the client
 * certificate it presents (`mtls_client_cert`), the extra CA it trusts (`ca_certificate`), and the
 * Slack and Teams incoming-webhook URLs its state changes are posted to (Convoy's
 * `slack_webhook_url`, `teams_webhook_url`: whoever holds one can post to the channel, so they are
 * kept like the others). Checked when the endpoint is saved, stored encrypted, shown with secrets
 * hidden.
 */
import { absent, type Reader } from '../core/settings.ts';
import { authSecretKeys, parseEndpointAuth, type EndpointAuth } from './auth.ts';
import { checkCaBundle, checkClientCertificate, type TlsOptions } from './tls.ts';

export interface EndpointCredentials {
  authentication: EndpointAuth | null;
  mtls_client_cert: { client_cert: string; client_key: string } | null;
  ca_certificate: string | null;
  slack_webhook_url?: string | null;
  teams_webhook_url?: string | null;
}

export const NO_CREDENTIALS: EndpointCredentials = Object.freeze({ authentication: null, mtls_client_cert: null, ca_certificate: null });
export const CHAT_KEYS = ['slack_webhook_url', 'teams_webhook_url'] as const;
export type ChatKey = (typeof CHAT_KEYS)[number];
export const CREDENTIAL_KEYS = ['authentication', 'mtls_client_cert', 'ca_certificate', ...CHAT_KEYS] as const;
const PEM_MAX = 100_000;

/** Reads the three credential fields of an endpoint block (absent ones are null). */
export function readCredentials(r: Reader, block: Record<string, unknown>, at: string): EndpointCredentials {
  const prefix = at ? `${at}.` : '';
  const authentication = parseEndpointAuth(r, block.authentication, `${prefix}authentication`);
  let mtls: EndpointCredentials['mtls_client_cert'] = null;
  if (!absent(block.mtls_client_cert)) {
    const path = `${prefix}mtls_client_cert`;
    const m = r.fields(block.mtls_client_cert, path, ['client_cert', 'client_key']) ?? {};
    const cert = r.text(m.client_cert, `${path}.client_cert`, '', { max: PEM_MAX });
    const key = r.text(m.client_key, `${path}.client_key`, '', { max: PEM_MAX, secret: true });
    if (absent(m.client_cert)) r.bad(`${path}.client_cert`, 'is required: the PEM certificate presented to the endpoint');
    if (absent(m.client_key)) r.bad(`${path}.client_key`, 'is required: the PEM private key of the certificate');
    if (cert && key) {
      // Refused now rather than at every delivery.
      const why = checkClientCertificate(cert, key);
      if (why) r.bad(path, why);
    }
    mtls = { client_cert: cert, client_key: key };
  }
  let ca: string | null = null;
  if (!absent(block.ca_certificate)) {
    ca = r.text(block.ca_certificate, `${prefix}ca_certificate`, '', { max: PEM_MAX });
    const why = ca ? checkCaBundle(ca) : null;
    if (why) r.bad(`${prefix}ca_certificate`, why);
  }
  const chat: Partial<Record<ChatKey, string | null>> = {};
  // "" and null mean none, as Convoy's clients send them.
  for (const k of CHAT_KEYS) if (k in block) chat[k] = absent(block[k]) || block[k] === '' ? null : r.url(block[k], `${prefix}${k}`, null) || null;
  return { authentication, mtls_client_cert: mtls, ca_certificate: ca, ...chat };
}


/** Dotted keys (from the endpoint) that hold secrets. */
export function credentialSecretKeys(c: EndpointCredentials): string[] {
  return [
    ...authSecretKeys(c.authentication).map((k) => `authentication.${k}`),
    ...(c.mtls_client_cert ? ['mtls_client_cert.client_key'] : []),
    ...CHAT_KEYS.filter((k) => c[k]),
  ];
}

/** The TLS settings deliveries to the endpoint need, or null for the shared defaults. */
export function tlsOf(c: EndpointCredentials): TlsOptions | null {
  if (!c.mtls_client_cert && !c.ca_certificate) return null;
  return { ca: c.ca_certificate, clientCert: c.mtls_client_cert?.client_cert ?? null, clientKey: c.mtls_client_cert?.client_key ?? null };
}
