import { createServer } from 'node:http';
import { ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { createHash, createHmac } from 'node:crypto';
import { connector, Md5, regionOfQueueUrl, Sha256, toBrokerMessage } from '../../../connectors/sqs.ts';
import { settingsWithDefaultCredentials } from './settings.ts';

const AT = 'projects[0].sources[2].sqs';
const URL_ = 'https://sqs.eu-west-1.amazonaws.com/123456789012/orders';

const { settings, parse, issue } = settingsWithDefaultCredentials(connector, AT);

describe('sqs parse', () => {
  it('fills the defaults and takes the region from an amazonaws queue URL', () => {
    const { config, issues } = parse({ queue_url: URL_ });
    expect(issues).toEqual([]);
    expect(config).toEqual({
      queue_url: URL_,
      queue_name: null,
      region: 'eu-west-1',
      endpoint: null,
      credentials: null,
      use_default_credentials: true,
      wait_time_seconds: 20,
      max_messages: 10,
      visibility_timeout: 30,
      workers: 1,
      max_in_flight: 100,
    });
  });

  it('reads every setting, and what it returns parses again to itself', () => {
    const block = {
      queue_name: 'orders.fifo',
      region: 'us-west-2',
      endpoint: 'https://vpce-0abc.sqs.us-west-2.vpce.amazonaws.com',
      credentials: { access_key_id: 'AKIAEXAMPLE', secret_access_key: 'wJalrXUtnFEMI', session_token: 'FwoGZXIvYXdzEB' },
      use_default_credentials: false,
      wait_time_seconds: '5',
      max_messages: 3,
      visibility_timeout: 120,
      workers: 4,
      max_in_flight: 40,
    };
    const { config, issues } = parse(block);
    expect(issues).toEqual([]);
    expect(config).toEqual({
      queue_url: null,
      queue_name: 'orders.fifo',
      region: 'us-west-2',
      endpoint: 'https://vpce-0abc.sqs.us-west-2.vpce.amazonaws.com',
      credentials: { access_key_id: 'AKIAEXAMPLE', secret_access_key: 'wJalrXUtnFEMI', session_token: 'FwoGZXIvYXdzEB' },
      use_default_credentials: false,
      wait_time_seconds: 5,
      max_messages: 3,
      visibility_timeout: 120,
      workers: 4,
      max_in_flight: 40,
    });
    expect(parse(config)).toEqual({ config, issues: [] });
    expect(parse(parse({ queue_url: URL_ }).config).issues).toEqual([]);
  });

  it('takes a non-AWS queue URL (an emulator) with an explicit region; session_token is optional', () => {
    const { config, issues } = parse({
      queue_url: 'http://127.0.0.1:4566/000000000000/jobs',
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:4566',
      credentials: { access_key_id: 'test', secret_access_key: 'test' },
      wait_time_seconds: 0,
    });
    expect(issues).toEqual([]);
    expect(config.region).toBe('us-east-1');
    expect(config.credentials).toEqual({ access_key_id: 'test', secret_access_key: 'test', session_token: null });
    expect(config.wait_time_seconds).toBe(0);
  });

  it('needs exactly one of queue_url and queue_name', () => {
    expect(issue({ region: 'us-east-1' })).toEqual({ path: AT, message: 'needs queue_url, or queue_name with region: the queue to consume' });
    expect(issue({ queue_url: URL_, queue_name: 'orders' })).toEqual({ path: `${AT}.queue_name`, message: 'cannot be given with queue_url: give one of them' });
  });

  it('requires region with queue_name and with a queue URL that does not name one', () => {
    expect(issue({ queue_name: 'orders' })).toEqual({ path: `${AT}.region`, message: 'is required with queue_name' });
    expect(issue({ queue_url: 'http://localhost:9324/000000000000/orders' })).toEqual({
      path: `${AT}.region`,
      message: 'is required when queue_url is not an amazonaws.com URL naming its region',
    });
  });

  it('refuses a region that contradicts the queue URL, and one that is not a region', () => {
    expect(issue({ queue_url: URL_, region: 'us-east-1' })).toEqual({ path: `${AT}.region`, message: 'must match the region of queue_url (eu-west-1) (got "us-east-1")' });
    expect(issue({ queue_name: 'orders', region: 'US East' })).toEqual({ path: `${AT}.region`, message: 'must be an AWS region such as us-east-1 (got "US East")' });
  });

  it('checks queue_url', () => {
    expect(issue({ queue_url: 'orders', region: 'us-east-1' }).message).toMatch(/^must be an http or https queue URL such as https:\/\/sqs\.us-east-1\.amazonaws\.com\/123456789012\/orders \(got "orders"\)$/);
    expect(issue({ queue_url: 'ftp://sqs.us-east-1.amazonaws.com/1/orders' })).toEqual({ path: `${AT}.queue_url`, message: 'must be an http or https queue URL (got "ftp:")' });
    expect(issue({ queue_url: 'https://sqs.us-east-1.amazonaws.com/1/bad%20name' })).toMatchObject({ path: `${AT}.queue_url`, message: expect.stringMatching(/^must end in the queue's name/) });
    expect(issue({ queue_url: 'https://u:p@sqs.us-east-1.amazonaws.com/1/orders' })).toEqual({ path: `${AT}.queue_url`, message: 'must not carry credentials: give them under credentials' });
    expect(issue({ queue_url: 42 })).toEqual({ path: `${AT}.queue_url`, message: 'must be a string (got 42)' });
  });

  it('checks queue_name', () => {
    expect(issue({ queue_name: 'my queue', region: 'us-east-1' })).toEqual({
      path: `${AT}.queue_name`,
      message: 'must be 1-80 letters, digits, "-" or "_" (a FIFO queue\'s ending in ".fifo") (got "my queue")',
    });
    expect(issue({ queue_name: 'x'.repeat(81), region: 'us-east-1' }).path).toBe(`${AT}.queue_name`);
    expect(parse({ queue_name: `${'x'.repeat(75)}.fifo`, region: 'us-east-1' }).issues).toEqual([]);
  });

  it('checks endpoint', () => {
    expect(issue({ queue_url: URL_, endpoint: 'localhost:4566' })).toEqual({
      path: `${AT}.endpoint`,
      message: 'must be an http or https URL such as https://sqs.us-east-1.amazonaws.com (got "localhost:4566")',
    });
    expect(issue({ queue_url: URL_, endpoint: 'http://a:b@localhost:4566' })).toEqual({ path: `${AT}.endpoint`, message: 'must not carry credentials: give them under credentials' });
  });

  it("needs the source's own credentials unless the config file lends Wharf's identity", () => {
    // Issue 12: a source never signs with the operator's ambient AWS key unless told to.
    expect(settings.issue({ queue_url: URL_ })).toEqual({
      path: `${AT}.credentials`,
      message:
        "is required: the source's own access_key_id and secret_access_key (in the config file, use_default_credentials: true lends it Wharf's own AWS identity instead)",
    });
    expect(settings.parse({ queue_url: URL_, use_default_credentials: true }).config).toMatchObject({ credentials: null, use_default_credentials: true });
    expect(settings.issue({ queue_url: URL_, use_default_credentials: true, credentials: { access_key_id: 'A', secret_access_key: 's' } })).toEqual({
      path: `${AT}.use_default_credentials`,
      message: 'cannot be given with credentials: give one of them',
    });
  });

  it('checks credentials without quoting the secrets', () => {
    expect(issue({ queue_url: URL_, credentials: { access_key_id: 'AKIA' } })).toEqual({
      path: `${AT}.credentials.secret_access_key`,
      message: 'is required with credentials',
    });
    expect(issue({ queue_url: URL_, credentials: { secret_access_key: 's' } }).path).toBe(`${AT}.credentials.access_key_id`);
    expect(issue({ queue_url: URL_, credentials: 'AKIA:secret' })).toEqual({ path: `${AT}.credentials`, message: 'must be a mapping (got "AKIA:secret")' });
    const secret = issue({ queue_url: URL_, credentials: { access_key_id: 'AKIA', secret_access_key: 12345678 } });
    expect(secret).toEqual({ path: `${AT}.credentials.secret_access_key`, message: 'must be a string (got a number)' });
    const token = issue({ queue_url: URL_, credentials: { access_key_id: 'AKIA', secret_access_key: 's', session_token: 98765 } });
    expect(token).toEqual({ path: `${AT}.credentials.session_token`, message: 'must be a string (got a number)' });
    expect(issue({ queue_url: URL_, credentials: { access_key_id: 'AKIA', secret_access_key: 's', role: 'x' } })).toEqual({
      path: `${AT}.credentials.role`,
      message: '',
      unknown: true,
    });
  });

  it.each([
    ['wait_time_seconds', 21, 'must be an integer from 0 to 20 (got 21)'],
    ['wait_time_seconds', -1, 'must be an integer from 0 to 20 (got -1)'],
    ['max_messages', 0, 'must be an integer from 1 to 10 (got 0)'],
    ['max_messages', 11, 'must be an integer from 1 to 10 (got 11)'],
    ['visibility_timeout', 0, 'must be an integer from 1 to 43200 (got 0)'],
    ['visibility_timeout', 43_201, 'must be an integer from 1 to 43200 (got 43201)'],
    ['workers', 0, 'must be an integer from 1 to 64 (got 0)'],
    ['max_in_flight', 0, 'must be an integer from 1 to 10000 (got 0)'],
    ['max_in_flight', 'lots', 'must be an integer from 1 to 10000 (got "lots")'],
  ])('checks %s = %j', (key, value, message) => {
    expect(issue({ queue_url: URL_, [key]: value })).toEqual({ path: `${AT}.${key}`, message });
  });

  it('reports unknown keys and a block that is not a mapping', () => {
    expect(issue({ queue_url: URL_, queue: 'orders' })).toEqual({ path: `${AT}.queue`, message: '', unknown: true });
    expect(parse(['x']).issues).toEqual([
      { path: AT, message: 'must be a mapping (got a list)' },
      { path: AT, message: 'needs queue_url, or queue_name with region: the queue to consume' },
    ]);
  });

  it('names its secret keys', () => {
    expect(connector.type).toBe('sqs');
    expect(connector.secretKeys).toEqual(['credentials.secret_access_key', 'credentials.session_token']);
  });
});

describe('sqs regionOfQueueUrl', () => {
  it.each([
    ['https://sqs.us-east-1.amazonaws.com/1/q', 'us-east-1'],
    ['https://sqs.cn-north-1.amazonaws.com.cn/1/q', 'cn-north-1'],
    ['https://ap-southeast-2.queue.amazonaws.com/1/q', 'ap-southeast-2'],
    ['https://vpce-1.sqs.us-gov-west-1.vpce.amazonaws.com/1/q', 'us-gov-west-1'],
    ['https://queue.amazonaws.com/1/q', null],
    ['http://sqs.us-east-1.localhost:4566/000000000000/q', null],
    ['not a url', null],
  ])('%s → %s', (url, region) => {
    expect(regionOfQueueUrl(url)).toBe(region);
  });
});

describe('sqs toBrokerMessage', () => {
  const message = {
    MessageId: 'm-1',
    ReceiptHandle: 'r-1',
    Body: '{"event_type":"a"}',
    Attributes: { MessageGroupId: 'customer-7', SentTimestamp: '1' },
    MessageAttributes: {
      'X-Convoy-Message-Type': { DataType: 'String', StringValue: 'fanout' },
      Count: { DataType: 'Number', StringValue: '42' },
      Blob: { DataType: 'Binary', BinaryValue: Uint8Array.from(Buffer.from('hi')) },
      'Tagged': { DataType: 'String.custom', StringValue: 'v' },
    },
  };

  it('uses the MessageId, lower-cases attribute names, keeps text and base64-encodes binary', () => {
    const m = toBrokerMessage(message, false);
    expect(m.id).toBe('m-1');
    expect(m.body.toString('utf8')).toBe('{"event_type":"a"}');
    expect(m.headers).toEqual({ 'x-convoy-message-type': 'fanout', count: '42', blob: Buffer.from('hi').toString('base64'), tagged: 'v' });
    expect(m.key).toBeNull();
    expect(m.receivedAt).toBeInstanceOf(Date);
  });

  it('keys a FIFO message by its group', () => {
    expect(toBrokerMessage(message, true).key).toBe('customer-7');
    expect(toBrokerMessage({ MessageId: 'm-2', Body: '' }, true)).toMatchObject({ key: null, headers: {}, body: Buffer.alloc(0) });
  });
});

describe('the SigV4 signer\'s hash', () => {
  const hex = async (h: Sha256) => Buffer.from(await h.digest()).toString('hex');

  it('answers RFC 4231\'s HMAC-SHA-256 vectors and FIPS 180-2\'s SHA-256 of "abc"', async () => {
    const plain = new Sha256();
    plain.update('abc');
    expect(await hex(plain)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(await hex(plain)).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'); // asked twice
    // Test case 2 (a string key, as the signer's first HMAC has) and test case 1 (a 20-byte key).
    const jefe = new Sha256('Jefe');
    jefe.update('what do ya want for nothing?');
    expect(await hex(jefe)).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    const key = new Uint8Array(20).fill(0x0b);
    for (let i = 0; i < 2; i++) {
      // The same key object twice: the second HMAC takes the converted key.
      const h = new Sha256(key);
      h.update(new TextEncoder().encode('Hi There'));
      expect(await hex(h)).toBe('b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7');
    }
  });

  it('agrees with node:crypto for keys and data given as views into larger buffers, and after reset', async () => {
    const backing = Buffer.from('0123456789abcdef0123456789abcdef', 'utf8');
    const key = new Uint8Array(backing.buffer, backing.byteOffset + 3, 16);
    const data = new DataView(backing.buffer, backing.byteOffset + 5, 20);
    const h = new Sha256(key);
    h.update(data);
    h.update('é and more');
    const expected = createHmac('sha256', Buffer.from(key)).update(Buffer.from(data.buffer, data.byteOffset, data.byteLength)).update('é and more', 'utf8').digest('hex');
    expect(await hex(h)).toBe(expected);
    h.reset();
    h.update(new Uint8Array([1, 2, 3]).buffer);
    expect(await hex(h)).toBe(createHmac('sha256', Buffer.from(key)).update(Buffer.from([1, 2, 3])).digest('hex'));
    const other = new Sha256(new Uint8Array(16).fill(7));
    other.update('x');
    expect(await hex(other)).toBe(createHmac('sha256', Buffer.alloc(16, 7)).update('x').digest('hex'));
    const plain = new Sha256();
    plain.update(new Uint8Array([0xff]));
    expect(await hex(plain)).toBe(createHash('sha256').update(Buffer.from([0xff])).digest('hex'));
  });
});

describe('SQS requests signed with that hash', () => {
  const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';

  /** AWS Signature Version 4 worked out from the request as it arrived, with node:crypto alone. */
  function expectedSignature(method: string, path: string, headers: Record<string, string | string[] | undefined>, body: Buffer): string {
    const auth = String(headers.authorization);
    const [, scope, signed] = /Credential=AKIDEXAMPLE\/([^,]+), SignedHeaders=([^,]+),/.exec(auth)!;
    const names = signed!.split(';');
    const canonical = [
      method,
      path,
      '',
      ...names.map((n) => `${n}:${String(headers[n]).trim().replace(/\s+/g, ' ')}`),
      '',
      signed,
      createHash('sha256').update(body).digest('hex'),
    ].join('\n');
    const amzDate = String(headers['x-amz-date']);
    const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
    const [day, region, service, terminator] = scope!.split('/');
    let key: Buffer = Buffer.from(`AWS4${SECRET}`);
    for (const part of [day!, region!, service!, terminator!]) key = createHmac('sha256', key).update(part).digest();
    return createHmac('sha256', key).update(toSign).digest('hex');
  }

  it('verify under SigV4, request after request, as those signed with the SDK\'s own hash do', async () => {
    const checked: { own: boolean; ok: boolean }[] = [];
    let own = false;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const got = /Signature=([0-9a-f]{64})$/.exec(String(req.headers.authorization))?.[1];
        checked.push({ own, ok: got === expectedSignature(req.method!, req.url!, req.headers, Buffer.concat(chunks)) });
        res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' }).end('{"Messages":[]}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      for (const mine of [false, true]) {
        own = mine;
        const client = new SQSClient({
          region: 'eu-west-1',
          endpoint: `http://127.0.0.1:${port}`,
          credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: SECRET },
          ...(mine ? { sha256: Sha256 } : {}),
        });
        for (let i = 0; i < 3; i++) {
          await client.send(new ReceiveMessageCommand({ QueueUrl: `http://127.0.0.1:${port}/000000000000/orders-é`, MaxNumberOfMessages: 10, WaitTimeSeconds: i }));
        }
        client.destroy();
      }
    } finally {
      await new Promise((r) => server.close(r));
    }
    expect(checked).toEqual([...Array(3).fill({ own: false, ok: true }), ...Array(3).fill({ own: true, ok: true })]);
  });
});

describe('the body checks\' MD5', () => {
  it('answers RFC 1321\'s vectors, the same when asked twice and after reset', async () => {
    const hex = async (h: Md5) => Buffer.from(await h.digest()).toString('hex');
    const h = new Md5();
    expect(await hex(h)).toBe('d41d8cd98f00b204e9800998ecf8427e');
    h.reset();
    h.update('abc');
    expect(await hex(h)).toBe('900150983cd24fb0d6963f7d28e17f72');
    expect(await hex(h)).toBe('900150983cd24fb0d6963f7d28e17f72');
    const view = Buffer.from('xxmessage digestyy', 'utf8');
    const m = new Md5();
    m.update(new Uint8Array(view.buffer, view.byteOffset + 2, 14));
    expect(await hex(m)).toBe('f96b697d7cb7938d525a2f31aaf161d0');
  });

  it('still refuses a received body that does not match its MD5OfBody, and takes one that does', async () => {
    let answer = '';
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' }).end(answer));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const client = new SQSClient({
      region: 'eu-west-1',
      endpoint: `http://127.0.0.1:${port}`,
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      md5: Md5,
    });
    const receive = () => client.send(new ReceiveMessageCommand({ QueueUrl: `http://127.0.0.1:${port}/000000000000/orders`, MaxNumberOfMessages: 10 }));
    const message = (id: string, body: string, md5: string) => ({ MessageId: id, ReceiptHandle: `r-${id}`, Body: body, MD5OfBody: md5 });
    try {
      const body = '{"event_type":"order.paid","data":{"é":"😀"}}';
      answer = JSON.stringify({ Messages: [message('m-1', body, createHash('md5').update(body, 'utf8').digest('hex'))] });
      expect((await receive()).Messages?.[0]?.Body).toBe(body);
      answer = JSON.stringify({
        Messages: [message('m-1', body, createHash('md5').update(body, 'utf8').digest('hex')), message('m-2', `${body} `, createHash('md5').update(body, 'utf8').digest('hex'))],
      });
      await expect(receive()).rejects.toThrow('Invalid MD5 checksum on messages: m-2');
    } finally {
      client.destroy();
      await new Promise((r) => server.close(r));
    }
  });
});
