/**
 * The connection pools deliveries use: one shared pool, and one per distinct TLS setting
 * (client certificate, CA bundle) so that keep-alive connections are never reused across
 * endpoints with different credentials. All of them go through the egress guard.
 */
import { createHash } from 'node:crypto';
import type { Agent } from 'undici';
import type { EgressPolicy } from './egress.ts';
import { createEndpointAgent, type TlsOptions } from './tls.ts';

const NO_TLS: TlsOptions = Object.freeze({ ca: null, clientCert: null, clientKey: null });
/** Pools kept for TLS settings; the least recently used is closed beyond this. */
const MAX_TLS_AGENTS = 256;

export interface AgentPool {
  shared: Agent;
  forTls(tls: TlsOptions | null): Agent;
  close(): Promise<void>;
}

export function createAgentPool(policy: EgressPolicy): AgentPool {
  const shared = createEndpointAgent({ policy, tls: NO_TLS });
  const byTls = new Map<string, Agent>();
  return {
    shared,
    forTls(tls) {
      if (tls === null) return shared;
      const key = createHash('sha256').update(JSON.stringify([tls.ca, tls.clientCert, tls.clientKey])).digest('hex');
      let agent = byTls.get(key);
      if (agent) {
        byTls.delete(key); // re-inserted below: most recently used last
      } else {
        agent = createEndpointAgent({ policy, tls, connections: 32 });
        if (byTls.size >= MAX_TLS_AGENTS) {
          const [oldest, old] = byTls.entries().next().value!;
          byTls.delete(oldest);
          void old.close();
        }
      }
      byTls.set(key, agent);
      return agent;
    },
    async close() {
      await Promise.all([shared.close(), ...[...byTls.values()].map((a) => a.close())]);
      byTls.clear();
    },
  };
}
