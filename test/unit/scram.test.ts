/**
 * The embedded database's SCRAM-SHA-256 server side (issue 12, item 7): a client that knows the
 * password is let in and can check the server; a wrong proof, a replayed one, or a second try in
 * the same exchange is refused. The client here follows RFC 5802 on its own, as pg does.
 */
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ScramExchange, scramVerifier } from '../../src/store/scram.ts';

const hmac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text).digest();

/** The client's final message for `serverFirst`, and the server signature it expects back. */
function clientFinal(password: string, clientFirstBare: string, serverFirst: string): { message: string; serverSignature: string } {
  const attrs = new Map(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)] as const));
  const salted = pbkdf2Sync(password, Buffer.from(attrs.get('s')!, 'base64'), Number(attrs.get('i')), 32, 'sha256');
  const clientKey = hmac(salted, 'Client Key');
  const withoutProof = `c=biws,r=${attrs.get('r')}`;
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  const signature = hmac(createHash('sha256').update(clientKey).digest(), authMessage);
  const proof = Buffer.from(clientKey.map((b, i) => b ^ signature[i]!));
  return { message: `${withoutProof},p=${proof.toString('base64')}`, serverSignature: `v=${hmac(hmac(salted, 'Server Key'), authMessage).toString('base64')}` };
}

describe('SCRAM-SHA-256 exchange', () => {
  const password = 'correct-horse-battery-staple';
  const bare = 'n=*,r=clientnonce0123456789';

  it('lets in the right password and signs for the server', async () => {
    const verifier = await scramVerifier(password);
    const exchange = new ScramExchange(verifier);
    const serverFirst = exchange.first(`n,,${bare}`)!;
    expect(serverFirst).toMatch(/^r=clientnonce0123456789[A-Za-z0-9+/=]+,s=[A-Za-z0-9+/=]+,i=4096$/);
    const { message, serverSignature } = clientFinal(password, bare, serverFirst);
    expect(exchange.final(message)).toBe(serverSignature);
  });

  it('refuses a wrong password, a replayed proof and a second try', async () => {
    const verifier = await scramVerifier(password);
    const wrong = new ScramExchange(verifier);
    expect(wrong.final('c=biws,r=x,p=AAAA')).toBeNull(); // no first message yet
    expect(wrong.final(clientFinal('not-the-password', bare, wrong.first(`n,,${bare}`)!).message)).toBeNull();

    const first = new ScramExchange(verifier);
    const recorded = clientFinal(password, bare, first.first(`n,,${bare}`)!).message;
    expect(first.final(recorded)).not.toBeNull();
    expect(first.final(recorded)).toBeNull();
    // Another exchange has another server nonce: what was recorded proves nothing there.
    const replay = new ScramExchange(verifier);
    replay.first(`n,,${bare}`);
    expect(replay.final(recorded)).toBeNull();
  });

  it('refuses what is not a SCRAM client-first message', async () => {
    const exchange = new ScramExchange(await scramVerifier(password));
    for (const message of ['', 'p=tls-server-end-point,,n=*,r=abc', 'n,a=admin,n=*,r=abc', 'n,,n=*', 'n,,n=*,r=a,b']) {
      expect(exchange.first(message), message).toBeNull();
    }
  });
});
