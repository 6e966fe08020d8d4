import { egressGuard } from '../../src/delivery/egress.ts';

/** The egress guard test connectors get: the harness brokers run on loopback, which tests allow. */
export const LOOPBACK_EGRESS = egressGuard({ allow: ['127.0.0.0/8', '::1/128'], block: [] });
