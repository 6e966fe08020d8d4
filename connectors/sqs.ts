import type { ConnectorModule } from '../src/core/connector.ts';

/** Placeholder until the sqs connector lands. */
export const connector: ConnectorModule<Record<string, unknown>> = {
  type: 'sqs',
  secretKeys: [],
  parse: (r, value, at) => r.fields(value, at, []) ?? {},
  create: () => Promise.reject(new Error('the sqs connector is not built yet')),
};
