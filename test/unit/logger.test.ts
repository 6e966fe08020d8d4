import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.ts';

describe('logger', () => {
  it('writes JSON with credentials redacted wherever they appear', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('info', sink);
    log.info({ req: { headers: { authorization: 'Bearer wharf_topsecret', host: 'x' } } }, 'request');
    log.info({ endpoint: { id: 'acme', secret: 'whsec_c2VjcmV0', url: 'https://acme.example' } }, 'endpoint');
    log.info({ auth: { header_value: 'key-123', password: 'hunter2' } }, 'auth');
    log.debug({ secret: 'not-at-this-level' }, 'hidden');
    expect(lines).toHaveLength(3);
    const all = lines.join('');
    for (const secret of ['wharf_topsecret', 'whsec_c2VjcmV0', 'key-123', 'hunter2']) expect(all).not.toContain(secret);
    const first = JSON.parse(lines[0]!);
    expect(first).toMatchObject({ msg: 'request', service: 'wharf', req: { headers: { authorization: '[redacted]', host: 'x' } } });
    expect(JSON.parse(lines[1]!).endpoint).toEqual({ id: 'acme', secret: '[redacted]', url: 'https://acme.example' });
  });
});
