import type { ConnectorModule } from '../src/core/connector.ts';

/** Placeholder until the pubsub connector lands. */
export const connector: ConnectorModule<Record<string, unknown>> = {
  type: 'pubsub',
  secretKeys: [],
  parse: (r, value, at) => r.fields(value, at, []) ?? {},
  create: () => Promise.reject(new Error('the pubsub connector is not built yet')),
};
