import type { ConnectorModule } from '../src/core/connector.ts';

/** Placeholder until the kafka connector lands. */
export const connector: ConnectorModule<Record<string, unknown>> = {
  type: 'kafka',
  secretKeys: [],
  parse: (r, value, at) => r.fields(value, at, []) ?? {},
  create: () => Promise.reject(new Error('the kafka connector is not built yet')),
};
