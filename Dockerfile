# syntax=docker/dockerfile:1
# Wharf runs TypeScript directly with Node 24's type stripping: no build step, the image holds the
# sources and the production dependencies only.

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-slim AS runtime
ENV NODE_ENV=production \
    WHARF_DATA_DIR=/var/lib/wharf \
    WHARF_PORT=5005
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY connectors ./connectors
COPY config ./config
RUN mkdir -p /var/lib/wharf && chown node:node /var/lib/wharf
USER node
# config/container.yaml: all interfaces, and no loopback or private egress (the quick start's
# wharf.yaml allows loopback for local use; inside a container network that is the operator's).
ENV WHARF_CONFIG=/app/config/container.yaml \
    WHARF_HOST=0.0.0.0
EXPOSE 5005
VOLUME ["/var/lib/wharf"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.WHARF_PORT||5005)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
# V8 heap flags: src/node-flags.ts says why.
ENTRYPOINT ["node", "--max-semi-space-size=16", "--heap-growing-percent=50", "src/main.ts"]
CMD ["start"]
