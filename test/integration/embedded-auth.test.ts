/**
 * The embedded database's port takes only Wharf (issue 12, item 7): a password generated into the
 * data directory (mode 0600) is asked of every connection, by SCRAM-SHA-256, before PGlite sees it.
 */
import { chmod, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/store/embedded.ts';

describe('embedded database authentication', () => {
  let dir: string;
  let db: EmbeddedPostgres;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wharf-embedded-auth-'));
    db = await startEmbeddedPostgres({ dataDir: dir });
  });
  afterAll(async () => {
    await db?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const query = async (url: string | pg.ClientConfig): Promise<unknown> => {
    const client = new pg.Client(typeof url === 'string' ? { connectionString: url } : url);
    try {
      await client.connect();
      return (await client.query('SELECT 1 AS one')).rows[0];
    } finally {
      await client.end().catch(() => undefined);
    }
  };

  it('lets in a client with the password, and keeps the password in a file only its owner reads', async () => {
    expect(await query(db.url)).toEqual({ one: 1 });
    const file = join(dir, 'pglite.password');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'pglite'))).mode & 0o777).toBe(0o700);
    expect(db.url).toContain(encodeURIComponent((await readFile(file, 'utf8')).trim()));
  });

  it('refuses a client without the password', async () => {
    const { hostname, port } = new URL(db.url);
    // pg itself gives up once asked for SCRAM with no password to prove: nothing is ever run.
    await expect(query({ host: hostname, port: Number(port), user: 'postgres', database: 'postgres', password: '' })).rejects.toThrow(/password/);
    await expect(query(`postgres://postgres@${hostname}:${port}/postgres?sslmode=disable`)).rejects.toThrow(/password/);
  });

  it('refuses a wrong password with 28P01', async () => {
    const url = new URL(db.url);
    url.password = 'not-the-password';
    await expect(query(url.toString())).rejects.toMatchObject({ code: '28P01' });
    url.username = 'someone';
    await expect(query(url.toString())).rejects.toMatchObject({ code: '28P01' });
  });

  /** Writes raw protocol bytes to the server and gives back all it answered until it closed. */
  const exchange = (bytes: Buffer): Promise<Buffer> => {
    const { port, hostname } = new URL(db.url);
    return new Promise<Buffer>((resolve, reject) => {
      const socket = connect({ host: hostname, port: Number(port) });
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('close', () => resolve(Buffer.concat(chunks)));
      socket.on('error', reject);
      socket.on('connect', () => socket.write(bytes));
    });
  };

  it('runs nothing for a client that skips the password', async () => {
    const params = Buffer.from('user\0postgres\0database\0postgres\0\0');
    const startup = Buffer.alloc(8 + params.length);
    startup.writeInt32BE(startup.length, 0);
    startup.writeInt32BE(196608, 4);
    params.copy(startup, 8);
    const sql = Buffer.from('SELECT 42\0');
    const q = Buffer.alloc(5 + sql.length);
    q.write('Q', 0);
    q.writeInt32BE(4 + sql.length, 1);
    sql.copy(q, 5);
    const answer = await exchange(Buffer.concat([startup, q]));
    // A SASL (SCRAM-SHA-256) request, then the refusal; never a row.
    expect(answer.subarray(0, 1).toString()).toBe('R');
    expect(answer.readInt32BE(5)).toBe(10);
    expect(answer.toString('latin1')).toContain('SCRAM-SHA-256');
    expect(answer.toString('latin1')).toContain('C28P01');
    expect(answer.toString('latin1')).not.toContain('42');
  });

  it('refuses a startup packet longer than Postgres allows at once, without waiting for it', async () => {
    const header = Buffer.alloc(8);
    header.writeInt32BE(100 * 1024 * 1024, 0);
    header.writeInt32BE(196608, 4);
    const answer = await exchange(header);
    expect(answer.toString('latin1')).toContain('C08P01');
  });

  it('keeps the same password across restarts, and makes its file private again', async () => {
    const before = db.url;
    await db.stop();
    await chmod(join(dir, 'pglite.password'), 0o644);
    db = await startEmbeddedPostgres({ dataDir: dir });
    expect((await stat(join(dir, 'pglite.password'))).mode & 0o777).toBe(0o600);
    expect(new URL(db.url).password).toBe(new URL(before).password);
    expect(await query(db.url)).toEqual({ one: 1 });
  });
});
