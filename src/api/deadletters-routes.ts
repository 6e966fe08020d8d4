import type { FastifyInstance } from 'fastify';
import { WharfError, conflict, notFound } from '../core/errors.ts';
import { UUID_RE } from '../core/ids.ts';
import { replayDeadLetter } from '../ingest/broker-sink.ts';
import { getSource } from '../store/sources.ts';
import { missing } from '../store/retention.ts';
import { convoyQuery, pageByIdDesc, pageRequest, stringFilters } from './pagination.ts';
import { reply, type ApiDeps } from './context.ts';
import type { Json } from '../core/validate.ts';

interface DeadLetterFields {
  id: string;
  project_id: string;
  source_id: string;
  source_type: string;
  broker_id: string;
  message_key: string | null;
  headers: Record<string, string>;
  code: string;
  reason: string;
  times_seen: number;
  received_at: Date;
  created_at: Date;
  updated_at: Date;
  replayed_at: Date | null;
  event_id: string | null;
}

/** One row with its whole body (GET /deadletters/{id}). */
interface DeadLetterRow extends DeadLetterFields {
  body: Buffer;
}

/** One row of a list: the body's size and first bytes only (a letter may be as large as max_body_bytes). */
interface DeadLetterListRow extends DeadLetterFields {
  body_head: Buffer;
  body_size: number;
}

const FIELDS = `id, project_id, source_id, source_type, broker_id, message_key, headers, code, reason, times_seen,
  received_at, created_at, updated_at, replayed_at, event_id`;
const COLUMNS = `${FIELDS}, body`;
/** How much of each body a list shows. */
const PREVIEW_BYTES = 256;
const LIST_COLUMNS = `${FIELDS}, substring(body FROM 1 FOR ${PREVIEW_BYTES}) AS body_head, octet_length(body) AS body_size`;

/** `bytes` as text when they are UTF-8; when `cut`, a character split at the end is left out. */
function utf8(bytes: Buffer, cut: boolean): string | null {
  for (let drop = 0; drop <= (cut ? Math.min(3, bytes.length) : 0); drop++) {
    const part = bytes.subarray(0, bytes.length - drop);
    const text = part.toString('utf8');
    if (Buffer.from(text, 'utf8').equals(part)) return text;
  }
  return null;
}

/** One letter: the body as text when it is UTF-8 (most are), and always as base64, byte for byte. */
function present(d: DeadLetterRow): Json {
  const { body, ...rest } = d;
  return { uid: d.id, ...rest, body_size: body.length, body: utf8(body, false), body_base64: body.toString('base64') };
}

/** A letter in a list: its body's size and, when it is text, its first 256 bytes (`body_preview`). */
function presentListed(d: DeadLetterListRow): Json {
  const { body_head: head, body_size: size, ...rest } = d;
  return { uid: d.id, ...rest, body_size: size, body_preview: utf8(head, size > head.length), body_truncated: size > head.length };
}

export async function deadLetterRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool, box } = deps;

  app.get('/deadletters', async (req, res) => {
    const q = convoyQuery(req.query);
    const filters = stringFilters(q, ['source_id', 'code']);
    if (q.replayed === 'true' || q.replayed === 'false') {
      filters.push({ column: `(replayed_at IS NOT NULL)`, value: q.replayed === 'true' });
    } else if (q.replayed !== undefined) {
      throw new WharfError('WHARF_ERR_INVALID', 'replayed: must be true or false', { status: 400, field: 'replayed' });
    }
    const result = await pageByIdDesc<DeadLetterListRow>(pool, { table: 'dead_letters', columns: LIST_COLUMNS, projectId: req.project.id, filters, page: pageRequest(q) });
    return reply(res, 200, 'Dead letters fetched', { content: result.content.map(presentListed), pagination: result.pagination });
  });

  app.get('/deadletters/:id', async (req, res) => {
    const { id } = req.params as { id: string };
    const { rows } = UUID_RE.test(id)
      ? await pool.query<DeadLetterRow>(`SELECT ${COLUMNS} FROM dead_letters WHERE project_id = $1 AND id = $2`, [req.project.id, id])
      : { rows: [] };
    if (!rows[0]) throw await missing(pool, req.project.id, 'dead_letters', 'dead letter', id);
    return reply(res, 200, 'Dead letter fetched', present(rows[0]));
  });

  app.post('/deadletters/:id/replay', async (req, res) => {
    const { id } = req.params as { id: string };
    if (!UUID_RE.test(id)) throw notFound('dead letter', id);
    const result = await replayDeadLetter(
      deps,
      async (db, projectId, sourceId) => {
        const record = await getSource(db, box, projectId, sourceId);
        return record ? { project_id: projectId, definition: record.definition } : null;
      },
      req.project.id,
      id,
    );
    if (result === null) throw notFound('dead letter', id);
    switch (result.status) {
      case 'already_replayed':
        throw conflict(`dead letter ${JSON.stringify(id)} was already replayed as event ${JSON.stringify(result.event_id)}`);
      case 'source_gone':
        throw conflict(`dead letter ${JSON.stringify(id)}: its source no longer exists, so its settings cannot be applied`);
      case 'rejected':
        throw new WharfError(result.code, `replay refused again: ${result.reason}`, { status: 422 });
      default:
        return reply(res, 200, result.status === 'stored' ? 'Replayed: event created' : 'Replayed: the event already existed', {
          event_id: result.event_id,
          duplicate: result.status === 'duplicate',
        });
    }
  });
}
