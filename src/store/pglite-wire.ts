import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

/**
 * Serves one PGlite database over the Postgres wire protocol to several client connections.
 *
 * PGlite has one backend, so connections take turns. The unit of a turn is a message group: a
 * simple Query, or an extended-protocol run (Parse, Bind, Describe, Execute, …) up to its Sync.
 * A group runs whole, so no other connection's Bind can replace this one's unnamed portal between
 * its Bind and Execute; and while a connection has a transaction open, only its groups run.
 * (@electric-sql/pglite-socket queues single messages and, outside a transaction, takes the next
 * from any connection: under concurrent load that interleaves extended-protocol runs and answers
 * one connection's query with another's portal. That is why Wharf serves PGlite itself.)
 */
export interface WireServer {
  port: number;
  stop(): Promise<void>;
}

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;

interface Conn {
  id: number;
  socket: Socket;
  buffer: Buffer;
  started: boolean;
  /** Between the startup message and a correct password: the startup message and the salt asked with. */
  pending: { startup: Buffer; user: string; salt: Buffer } | null;
  group: Buffer[];
  closed: boolean;
}

interface Turn {
  conn: Conn;
  messages: Buffer[];
}

/**
 * `password`: every connection must give it (MD5 challenge-response, so it never crosses the
 * socket in the clear) before PGlite sees its startup message; a wrong one gets SQLSTATE 28P01.
 */
export async function serveWire(db: PGlite, options: { host: string; port: number; maxConnections: number; password: string }): Promise<WireServer> {
  const conns = new Set<Conn>();
  const turns: Turn[] = [];
  let owner: Conn | null = null;
  let running = false;
  let nextId = 1;

  const pump = (): void => {
    if (running) return;
    const i = turns.findIndex((t) => owner === null || t.conn === owner);
    if (i === -1) return;
    const [turn] = turns.splice(i, 1);
    running = true;
    void runTurn(turn!).finally(() => {
      running = false;
      pump();
    });
  };

  const runTurn = async ({ conn, messages }: Turn): Promise<void> => {
    if (conn.closed) return;
    try {
      await db.runExclusive(async () => {
        for (const message of messages) {
          await db.execProtocolRawStream(new Uint8Array(message), {
            onRawData: (data) => {
              if (!conn.closed && data.length > 0) conn.socket.write(Buffer.from(data));
            },
          });
        }
      });
      owner = db.isInTransaction() ? conn : null;
    } catch {
      // PGlite itself failed (not an SQL error, which travels as an ErrorResponse): drop the client.
      owner = null;
      conn.socket.destroy();
    }
  };

  const close = async (conn: Conn): Promise<void> => {
    if (conn.closed) return;
    conn.closed = true;
    conns.delete(conn);
    for (let i = turns.length - 1; i >= 0; i--) if (turns[i]!.conn === conn) turns.splice(i, 1);
    if (owner === conn) {
      // Its transaction must not hold the database for everyone else.
      while (running) await new Promise((r) => setImmediate(r));
      owner = null;
      if (db.isInTransaction()) await db.exec('ROLLBACK').catch(() => undefined);
    }
    pump();
  };

  const onData = (conn: Conn, chunk: Buffer): void => {
    conn.buffer = conn.buffer.length ? Buffer.concat([conn.buffer, chunk]) : chunk;
    for (;;) {
      if (!conn.started) {
        // Startup-phase messages have no type byte: int32 length, int32 code.
        if (conn.buffer.length < 8) return;
        const len = conn.buffer.readInt32BE(0);
        if (conn.buffer.length < len) return;
        const code = conn.buffer.readInt32BE(4);
        const msg = conn.buffer.subarray(0, len);
        conn.buffer = conn.buffer.subarray(len);
        if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
          conn.socket.write('N');
          continue;
        }
        if (code === CANCEL_REQUEST) {
          conn.socket.destroy();
          return;
        }
        conn.started = true;
        // PGlite trusts whoever reaches it: the password is asked here, before it sees anything.
        const salt = randomBytes(4);
        conn.pending = { startup: Buffer.from(msg), user: startupUser(msg), salt };
        const ask = Buffer.alloc(13);
        ask.write('R', 0);
        ask.writeInt32BE(12, 1);
        ask.writeInt32BE(5, 5); // AuthenticationMD5Password
        salt.copy(ask, 9);
        conn.socket.write(ask);
        continue;
      }
      if (conn.pending) {
        if (conn.buffer.length < 5) return;
        const len = 1 + conn.buffer.readInt32BE(1);
        if (conn.buffer.length < len) return;
        const given = conn.buffer[0] === 0x70 ? conn.buffer.subarray(5, len - 1).toString('utf8') : '';
        conn.buffer = conn.buffer.subarray(len);
        const { startup, user, salt } = conn.pending;
        conn.pending = null;
        if (!passwordMatches(given, options.password, user, salt)) {
          conn.socket.end(errorResponse('28P01', `password authentication failed for user "${user}"`));
          void close(conn);
          return;
        }
        turns.push({ conn, messages: [startup] });
        pump();
        continue;
      }
      if (conn.buffer.length < 5) return;
      const len = 1 + conn.buffer.readInt32BE(1);
      if (conn.buffer.length < len) return;
      const type = String.fromCharCode(conn.buffer[0]!);
      const msg = Buffer.from(conn.buffer.subarray(0, len));
      conn.buffer = conn.buffer.subarray(len);
      if (type === 'X') {
        conn.socket.end();
        void close(conn);
        return;
      }
      conn.group.push(msg);
      // Query and Sync end a group; Flush does too, since its sender waits for an answer.
      if (type === 'Q' || type === 'S' || type === 'H') {
        turns.push({ conn, messages: conn.group });
        conn.group = [];
        pump();
      }
    }
  };

  const server: Server = createServer((socket) => {
    const conn: Conn = { id: nextId++, socket, buffer: Buffer.alloc(0), started: false, pending: null, group: [], closed: false };
    conns.add(conn);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => onData(conn, chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => void close(conn));
  });
  server.maxConnections = options.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;

  return {
    port,
    async stop() {
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const conn of [...conns]) {
        conn.socket.destroy();
        await close(conn);
      }
      while (running) await new Promise((r) => setImmediate(r));
      await closing;
    },
  };
}

/** The `user` parameter of a startup message (int32 length, int32 version, then name/value pairs). */
function startupUser(msg: Buffer): string {
  const parts = msg.subarray(8).toString('utf8').split('\0');
  for (let i = 0; i + 1 < parts.length; i += 2) if (parts[i] === 'user') return parts[i + 1]!;
  return '';
}

/** Postgres's MD5 answer: "md5" + md5(md5(password + user) + salt), compared in constant time. */
function passwordMatches(given: string, password: string, user: string, salt: Buffer): boolean {
  const inner = createHash('md5').update(password + user).digest('hex');
  const expected = Buffer.from(`md5${createHash('md5').update(Buffer.concat([Buffer.from(inner), salt])).digest('hex')}`);
  const got = Buffer.from(given);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

function errorResponse(code: string, message: string): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0\0`, 'utf8');
  const out = Buffer.alloc(5 + fields.length);
  out.write('E', 0);
  out.writeInt32BE(4 + fields.length, 1);
  fields.copy(out, 5);
  return out;
}
