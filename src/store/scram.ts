import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * The server side of SCRAM-SHA-256 (RFC 5802, RFC 7677) as Postgres runs it in its SASL exchange:
 * the password never crosses the socket, a recorded exchange cannot be replayed (each one has a
 * fresh server nonce), and the client checks the server's signature, so a process squatting on
 * the port cannot pose as the database. No channel binding: the embedded socket has no TLS.
 */
export const SCRAM_MECHANISM = 'SCRAM-SHA-256';

/** What the server keeps instead of the password (Postgres's pg_authid verifier). */
export interface ScramVerifier {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/** Postgres's default iteration count; pg refuses more than 100,000. */
const ITERATIONS = 4096;
const pbkdf2Async = promisify(pbkdf2);
const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();

/**
 * Derives the verifier once (PBKDF2 is slow on purpose, and asynchronous here so it never holds
 * the event loop); each exchange afterwards costs a few HMACs. The password must be printable
 * ASCII, which SASLprep leaves as it is.
 */
export async function scramVerifier(password: string): Promise<ScramVerifier> {
  const salt = randomBytes(16);
  const salted = await pbkdf2Async(password, salt, ITERATIONS, 32, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  return { salt, iterations: ITERATIONS, storedKey: createHash('sha256').update(clientKey).digest(), serverKey: hmac(salted, 'Server Key') };
}

/** Printable ASCII except ",": RFC 5802's `printable`, what a nonce is made of. */
const PRINTABLE = /^[\x21-\x2b\x2d-\x7e]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/**
 * One client's exchange: `first` answers the client-first message with the server-first one,
 * `final` checks the client's proof and answers with the server's signature. Either returns null
 * for a message that is malformed, or for a wrong proof; the caller then refuses the client.
 */
export class ScramExchange {
  readonly #verifier: ScramVerifier;
  #gs2Header = '';
  #clientFirstBare = '';
  #serverFirst = '';
  #nonce = '';

  constructor(verifier: ScramVerifier) {
    this.#verifier = verifier;
  }

  first(message: string): string | null {
    // gs2-header: "n" (no channel binding) or "y" (client could, server did not offer), no authzid.
    const m = /^([ny]),,(n=[^,]*,r=([^,]+)(?:,[A-Za-z]=[^,]*)*)$/.exec(message);
    if (!m || !PRINTABLE.test(m[3]!)) return null;
    this.#gs2Header = `${m[1]},,`;
    this.#clientFirstBare = m[2]!;
    this.#nonce = m[3]! + randomBytes(18).toString('base64');
    this.#serverFirst = `r=${this.#nonce},s=${this.#verifier.salt.toString('base64')},i=${this.#verifier.iterations}`;
    return this.#serverFirst;
  }

  final(message: string): string | null {
    if (!this.#serverFirst) return null;
    const at = message.lastIndexOf(',p=');
    if (at === -1) return null;
    const withoutProof = message.slice(0, at);
    const proofText = message.slice(at + 3);
    const [binding, nonce] = withoutProof.split(',');
    if (binding !== `c=${Buffer.from(this.#gs2Header).toString('base64')}` || nonce !== `r=${this.#nonce}`) return null;
    if (!BASE64.test(proofText)) return null;
    const proof = Buffer.from(proofText, 'base64');
    if (proof.length !== 32) return null;

    const authMessage = `${this.#clientFirstBare},${this.#serverFirst},${withoutProof}`;
    const signature = hmac(this.#verifier.storedKey, authMessage);
    const clientKey = Buffer.alloc(32);
    for (let i = 0; i < 32; i++) clientKey[i] = proof[i]! ^ signature[i]!;
    const stored = createHash('sha256').update(clientKey).digest();
    // One exchange, one try: a second final message is refused whatever it holds.
    this.#serverFirst = '';
    if (!timingSafeEqual(stored, this.#verifier.storedKey)) return null;
    return `v=${hmac(this.#verifier.serverKey, authMessage).toString('base64')}`;
  }
}
