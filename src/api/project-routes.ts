/**
 * The project itself, as Convoy's GetProject and UpdateProject answer it (`models.ProjectResponse`),
 * for its retention (issue 15): `GET` shows the ages a project set, the operator's, and those in
 * force; `PUT {"config": {"retention": {...}}}` sets the project's own. Everything else about a
 * project is the operator's config file's (projects[]), so the API refuses to set it, naming where
 * it is set. A project may keep its history for less time than the operator allows, never for more
 * (`inForce`, src/store/retention.ts).
 */
import type { FastifyInstance } from 'fastify';
import { RETENTION_KINDS, readRetention } from '../config/schema.ts';
import { invalid, notFound } from '../core/errors.ts';
import type { Project } from '../core/types.ts';
import { Reader } from '../core/settings.ts';
import { object, settingsError } from '../core/validate.ts';
import { getProjectRecord, setProjectRetention, type ProjectRecord } from '../store/projects.ts';
import { inForce, type RetentionPolicy } from '../store/retention.ts';
import { reply, type ApiDeps } from './context.ts';

/** Where the operator's file sets what Convoy's UpdateProject would set (models.UpdateProject, models.ProjectConfig). */
const SET_BY_OPERATOR: Record<string, string> = {
  name: 'projects[].name',
  'config.signature': 'projects[].signature',
  'config.strategy': 'projects[].retry',
  'config.circuit_breaker': 'projects[].breaker',
  'config.meta_event': 'projects[].meta_events',
  'config.ratelimit': "each endpoint's rate_limit",
};

const refused = (field: string) => {
  const where = SET_BY_OPERATOR[field];
  return invalid(field, `${where ? `is set by the operator's config file (${where})` : 'is not set through the API'}; this API sets config.retention only`);
};

const written = (policy: RetentionPolicy): Record<string, string> =>
  Object.fromEntries(RETENTION_KINDS.map((k) => [k, policy[k]?.text ?? 'off']));

export async function projectRoutes(app: FastifyInstance, deps: ApiDeps): Promise<void> {
  const { pool } = deps;

  const present = (project: Project, record: ProjectRecord) => {
    const operator = deps.retentionPolicies()(project.id);
    return {
      uid: project.id,
      name: project.name,
      type: project.type,
      config: {
        // The ages this project set itself (PUT), as it wrote them.
        retention: record.retention ?? {},
        // The operator's, for this project: the longest it may keep each kind.
        retention_limit: written(operator),
        // What the purge goes by: the shorter of the two, kind by kind.
        retention_in_force: written(inForce(operator, record.retention)),
      },
      created_at: record.created_at,
      updated_at: record.updated_at,
      deleted_at: null,
    };
  };

  app.get('/', async (req, res) => {
    const record = await getProjectRecord(pool, req.project.id);
    if (!record) throw notFound('project', req.project.id);
    return reply(res, 200, 'Project fetched successfully', present(req.project, record));
  });

  app.put('/', async (req, res) => {
    const body = object(req.body, 'body');
    for (const key of Object.keys(body)) {
      if (key === 'config') continue;
      throw refused(key);
    }
    if (body.config === undefined) throw invalid('config', 'is required: this API sets config.retention');
    const config = object(body.config, 'config');
    for (const key of Object.keys(config)) {
      if (key === 'retention') continue;
      throw refused(`config.${key}`);
    }
    if (!('retention' in config)) throw invalid('config.retention', 'is required (null clears the project\'s own retention)');
    // The config file's rules for a project's `retention` block; a kind left out or null follows the operator's.
    const r = new Reader();
    const ages = readRetention(r, config.retention, 'config.retention');
    if (r.issues.length > 0) throw settingsError(r.issues, '');
    const retention = ages === null || Object.keys(ages).length === 0 ? null : ages;
    const record = await setProjectRetention(pool, req.project.id, retention);
    if (!record) throw notFound('project', req.project.id);
    // The operator sees what a tenant changed about its history, and with which credential.
    deps.logger.info({ project: req.project.id, retention, actor: req.actor }, "a project set its own retention through the API");
    return reply(res, 202, 'Project updated successfully', present(req.project, record));
  });
}
