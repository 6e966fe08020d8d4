/** The overview's counts, read from the database for the projects a page shows. */
import type { Queryable } from '../store/queryable.ts';
import type { ProjectSummary } from './pages.ts';

export async function projectSummaries(db: Queryable, projects: { id: string; name: string }[]): Promise<ProjectSummary[]> {
  if (projects.length === 0) return [];
  const ids = projects.map((p) => p.id);
  const [endpoints, deliveries] = await Promise.all([
    db.query<{ project_id: string; status: string; n: string }>(
      'SELECT project_id, status, count(*) AS n FROM endpoints WHERE project_id = ANY($1) GROUP BY project_id, status',
      [ids],
    ),
    db.query<{ project_id: string; status: string; hour: string; day: string }>(
      `SELECT project_id, status, count(*) FILTER (WHERE created_at > now() - interval '1 hour') AS hour, count(*) AS day
       FROM deliveries WHERE project_id = ANY($1) AND created_at > now() - interval '1 day' GROUP BY project_id, status`,
      [ids],
    ),
  ]);
  return projects.map((p) => {
    const s: ProjectSummary = { id: p.id, name: p.name, endpoints: {}, hour: {}, day: {} };
    for (const r of endpoints.rows) if (r.project_id === p.id) s.endpoints[r.status] = Number(r.n);
    for (const r of deliveries.rows) {
      if (r.project_id !== p.id) continue;
      if (Number(r.hour) > 0) s.hour[r.status] = Number(r.hour);
      s.day[r.status] = Number(r.day);
    }
    return s;
  });
}
