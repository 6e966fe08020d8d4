import type { ConnectorModule } from '../src/core/connector.ts';

/** Placeholder until the rabbitmq connector lands. */
export const connector: ConnectorModule<Record<string, unknown>> = {
  type: 'rabbitmq',
  secretKeys: [],
  parse: (r, value, at) => r.fields(value, at, []) ?? {},
  create: () => Promise.reject(new Error('the rabbitmq connector is not built yet')),
};
