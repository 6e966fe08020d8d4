import { describe, expect, it } from 'vitest';
import { connectorFor } from '../../connectors/index.ts';
import { SCRUBBED, scrubSecrets, scrubbingLogger, secretScrubber, secretValues } from '../../src/core/redact.ts';

const PEM = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n';

describe('secretValues', () => {
  it('takes the strings at the keys, a URL password, and the secret members of a key file', () => {
    expect(secretValues({ sasl: { username: 'svc', password: 'pw-1' } }, connectorFor('kafka').secretKeys)).toEqual(['pw-1']);
    expect(
      secretValues({ credentials: { access_key_id: 'AKIA', secret_access_key: 's3cr3t', session_token: null } }, connectorFor('sqs').secretKeys),
    ).toEqual(['s3cr3t']);
    expect(secretValues({ url: 'amqp://user:p%40ss@rabbit:5672/vh' }, connectorFor('rabbitmq').secretKeys)).toEqual([
      'amqp://user:p%40ss@rabbit:5672/vh',
      'p@ss',
    ]);
    // Not the project, e-mail or URIs of a service-account key: they name things in every log line.
    const key = { type: 'service_account', project_id: 'acme-prod', private_key_id: 'abc', private_key: PEM, client_email: 'w@acme-prod.iam', token_uri: 'https://t' };
    expect(secretValues({ credentials: key }, connectorFor('pubsub').secretKeys)).toEqual([PEM]);
    expect(secretValues({}, ['sasl.password', 'credentials'])).toEqual([]);
  });
});

describe('scrubSecrets', () => {
  it('replaces every occurrence, as given, URL-encoded and JSON-escaped', () => {
    expect(scrubSecrets('auth pw-1 failed (pw-1)', ['pw-1'])).toBe(`auth ${SCRUBBED} failed (${SCRUBBED})`);
    expect(scrubSecrets('GET /?key=a%2Fb%3Dc', ['a/b=c'])).toBe(`GET /?key=${SCRUBBED}`);
    expect(scrubSecrets(`{"k":${JSON.stringify('line1\nline2"x')}}`, ['line1\nline2"x'])).toBe(`{"k":"${SCRUBBED}"}`);
    expect(scrubSecrets('nothing here', ['pw-1', ''])).toBe('nothing here');
  });

  it('takes a URL whole before its password, and the password alone where it is quoted apart', () => {
    const values = secretValues({ url: 'amqp://u:hunter2@h/' }, ['url']);
    expect(scrubSecrets('connect amqp://u:hunter2@h/ refused', values)).toBe(`connect ${SCRUBBED} refused`);
    expect(scrubSecrets('bad password "hunter2"', values)).toBe(`bad password "${SCRUBBED}"`);
  });

  it('removes any PEM private key, also one cut short or JSON-escaped', () => {
    expect(scrubSecrets(`key: ${PEM}end`, [])).toBe(`key: ${SCRUBBED}\nend`);
    expect(scrubSecrets(`cut: ${PEM.slice(0, 40)}`, [])).toBe(`cut: ${SCRUBBED}`);
    const escaped = JSON.stringify({ private_key: PEM });
    expect(scrubSecrets(escaped, [PEM])).not.toContain('MIIE');
    expect(scrubSecrets(escaped.slice(0, 50), [PEM])).not.toContain('MIIE');
  });
});

describe('scrubbingLogger', () => {
  it('scrubs the message and every string of the fields, errors included, and leaves the rest', () => {
    const seen: [string, Record<string, unknown>, string][] = [];
    const at = (level: string) => (obj: object, msg: string) => void seen.push([level, obj as Record<string, unknown>, msg]);
    const logger = scrubbingLogger({ debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, secretScrubber(['pw-1']));
    const err = Object.assign(new Error('login pw-1 refused', { cause: new Error('inner pw-1') }), { code: 'E_PW', detail: { said: 'pw-1' } });
    const buffer = Buffer.from('pw-1');
    logger.warn({ err, n: 3, list: ['a pw-1'], nested: { text: 'x pw-1 y' }, buffer }, 'failed with pw-1');
    logger.debug({}, 'fine');
    const [[level, fields, msg], second] = seen;
    expect([level, msg]).toEqual(['warn', `failed with ${SCRUBBED}`]);
    expect(JSON.stringify(fields)).not.toContain('pw-1');
    expect(fields).toMatchObject({ n: 3, list: [`a ${SCRUBBED}`], nested: { text: `x ${SCRUBBED} y` }, buffer });
    const copy = fields.err as Error & { code: string; detail: unknown };
    expect(copy).toBeInstanceOf(Error);
    expect([copy.message, copy.code, copy.detail, (copy.cause as Error).message]).toEqual([
      `login ${SCRUBBED} refused`,
      'E_PW',
      { said: SCRUBBED },
      `inner ${SCRUBBED}`,
    ]);
    expect(copy.stack).not.toContain('pw-1');
    expect(err.message).toBe('login pw-1 refused'); // the original is left alone
    expect(second).toEqual(['debug', {}, 'fine']);
  });
});
