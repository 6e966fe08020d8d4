import type pg from 'pg';
import { ConfigError, WharfError } from '../core/errors.ts';
import { generateSecret } from '../delivery/signatures.ts';
import { generateApiKey, hashApiKey, type SecretBox } from '../store/crypto.ts';
import {
  addSecret,
  currentSecret,
  deleteEndpoint,
  expireSecrets,
  getEndpoint,
  insertEndpoint,
  listConfigEndpointIds,
  saveCredentials,
  updateEndpoint,
} from '../store/endpoints.ts';
import { withTransaction } from '../store/pool.ts';
import type { Queryable } from '../store/queryable.ts';
import { claimBrokerAddresses, deleteSource, getSource, listSources, saveSource, sourceExists } from '../store/sources.ts';
import { brokerAddresses } from '../sources/settings.ts';
import { deleteSubscription, listSubscriptions, saveSubscription } from '../store/subscriptions.ts';
import { addApiKey, countApiKeys, setConfigApiKeys, upsertProject } from '../store/projects.ts';
import type { WharfConfig } from './schema.ts';

export interface ReconcileResult {
  /** Keys made for projects that had none; shown once, then only their hashes exist. */
  generatedKeys: { projectId: string; key: string }[];
}

/**
 * Makes the database hold what the YAML declares: projects, their config API keys, and their
 * endpoints (keeping the ids given). Objects made through the API are left alone; endpoints that
 * came from config and are no longer declared are removed. Projects are never deleted here, since
 * that would take their event history with them.
 */
export async function reconcileConfig(
  pool: pg.Pool,
  box: SecretBox,
  config: WharfConfig,
  file: string,
): Promise<ReconcileResult> {
  const generatedKeys: ReconcileResult['generatedKeys'] = [];
  await withTransaction(pool, async (db) => {
    // Serialises replicas that start together.
    await db.query(`SELECT pg_advisory_xact_lock(hashtext('wharf.reconcile'))`);
    await claimUnclaimed(db, box);
    for (const [pi, p] of config.projects.entries()) {
      const meta_events = p.meta_events && { url: p.meta_events.url, event_types: p.meta_events.event_types, secret_enc: box.encrypt(p.meta_events.secret) };
      await upsertProject(db, { id: p.id, name: p.name, type: p.type, type_enforced: p.type_enforced, signature: p.signature, retry: p.retry, breaker: p.breaker, meta_events }, true);
      await setConfigApiKeys(db, p.id, p.api_keys.map(hashApiKey));
      if (p.api_keys.length > 0) {
        await db.query(`DELETE FROM api_keys WHERE project_id = $1 AND origin = 'generated'`, [p.id]);
      } else if ((await countApiKeys(db, p.id)) === 0) {
        const key = generateApiKey();
        await addApiKey(db, p.id, hashApiKey(key), 'generated');
        generatedKeys.push({ projectId: p.id, key });
      }

      const declared = new Set(p.endpoints.map((e) => e.id));
      for (const id of await listConfigEndpointIds(db, p.id)) {
        if (!declared.has(id)) await deleteEndpoint(db, p.id, id);
      }
      for (const e of p.endpoints) {
        const { id: _id, secret: _secret, credentials, ...fields } = e;
        const existing = await getEndpoint(db, p.id, e.id);
        if (!existing) {
          await insertEndpoint(db, box, p.id, e.id, fields, e.secret ?? generateSecret(p.signature.scheme), { credentials, fromConfig: true });
          continue;
        }
        await updateEndpoint(db, p.id, e.id, fields);
        await saveCredentials(db, box, p.id, e.id, credentials);
        await db.query('UPDATE endpoints SET from_config = true WHERE project_id = $1 AND id = $2', [p.id, e.id]);
        // A secret changed in YAML replaces the old one at once; graceful rotation is the API's job.
        if (e.secret !== null && (await currentSecret(db, box, p.id, e.id)) !== e.secret) {
          await expireSecrets(db, p.id, e.id, 0);
          await addSecret(db, box, p.id, e.id, e.secret);
        }
      }

      // Sources: declared ones saved (updated_at moves only on a real change, so running
      // connectors restart only then); config sources no longer declared are removed.
      const declaredSources = new Set(p.sources.map((s) => s.id));
      for (const s of await listSources(db, box, p.id)) {
        if (s.from_config && !declaredSources.has(s.id)) await deleteSource(db, p.id, s.id);
      }
      for (const [i, s] of p.sources.entries()) {
        // A mask_id another source holds (one made through the API) is named like any config error.
        await saveSource(db, box, p.id, s, true).catch((err: unknown) => {
          if (!(err instanceof WharfError && err.code === 'WHARF_ERR_CONFLICT' && err.field === 'http.mask_id')) throw err;
          const key = `projects[${pi}].sources[${i}].http.mask_id`;
          throw new ConfigError(`${file}: ${key}: another source already uses this mask_id; choose another or leave it out`, { file, key });
        });
        await claimBrokerAddresses(db, p.id, s.id, brokerAddresses(s)).catch((err: unknown) => {
          throw new ConfigError(`${file}: projects[${pi}].sources[${i}]: ${(err as Error).message}`, { file, key: `projects[${pi}].sources[${i}]` });
        });
      }

      // Subscriptions last: they refer to endpoints and sources, from this file or the API.
      const declaredSubs = new Set(p.subscriptions.map((s) => s.id));
      for (const s of await listSubscriptions(db, p.id)) {
        if (s.from_config && !declaredSubs.has(s.id)) await deleteSubscription(db, p.id, s.id);
      }
      for (const [si, s] of p.subscriptions.entries()) {
        const at = `projects[${pi}].subscriptions[${si}]`;
        if (!(await getEndpoint(db, p.id, s.endpoint_id))) {
          throw new ConfigError(`${file}: ${at}.endpoint_id: endpoint ${JSON.stringify(s.endpoint_id)} does not exist in project ${JSON.stringify(p.id)}`, { file, key: `${at}.endpoint_id` });
        }
        if (s.source_id !== null && !(await sourceExists(db, p.id, s.source_id))) {
          throw new ConfigError(`${file}: ${at}.source_id: source ${JSON.stringify(s.source_id)} does not exist in project ${JSON.stringify(p.id)}`, { file, key: `${at}.source_id` });
        }
        await saveSubscription(db, p.id, s.id, s, true);
      }
    }
  });
  return { generatedKeys };
}

/**
 * Broker sources whose claims are not what their definition names today (saved before addresses
 * were claimed, migration 009, or before an address's spelling changed) claim theirs now; where two
 * projects already read one address, the first keeps it and the other keeps what it had, and the
 * next save of that source answers 409.
 */
async function claimUnclaimed(db: Queryable, box: SecretBox): Promise<void> {
  const { rows } = await db.query<{ project_id: string; id: string; claimed: string[] }>(
    `SELECT s.project_id, s.id, coalesce(array_agg(c.address) FILTER (WHERE c.address IS NOT NULL), '{}') AS claimed
       FROM sources s LEFT JOIN broker_claims c ON c.project_id = s.project_id AND c.source_id = s.id
      WHERE s.type <> 'http'
      GROUP BY s.project_id, s.id, s.created_at
      ORDER BY s.created_at`,
  );
  for (const r of rows) {
    const record = await getSource(db, box, r.project_id, r.id);
    if (!record) continue;
    const addresses = [...new Set(brokerAddresses(record.definition))].sort();
    const claimed = [...r.claimed].sort();
    if (addresses.length === claimed.length && addresses.every((a, i) => a === claimed[i])) continue;
    await db.query('SAVEPOINT claim');
    try {
      await claimBrokerAddresses(db, r.project_id, r.id, addresses);
      await db.query('RELEASE SAVEPOINT claim');
    } catch {
      await db.query('ROLLBACK TO SAVEPOINT claim');
    }
  }
}
