# One image for the three services and the console; infra/compose/docker-compose.yml (and the Helm
# chart) pick the service with the command, e.g. `node services/ingest/src/main.ts`.
# Node >= 22.18 runs the TypeScript sources directly (type stripping), so there is no build
# step and no tsx: the same command as `npm run start:ingest`.
FROM node:22-slim

ENV NODE_ENV=production
WORKDIR /app

# dependencies first (cached while package*.json are unchanged); dev dependencies (test and
# lint tools) are not needed at run time
# patches/: fixes to kafkajs's producer and ioredis's Sentinel client, applied by patch-package at
# install (README)
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY lib ./lib
COPY services ./services
COPY schemas ./schemas
# the operators' commands (npm run dlq, reprocess, orgs:reseal), run inside a service's pod
COPY tools ./tools

USER node
# ingest (3000): webhooks, OAuth install, /healthz, /readyz, /metrics; console (8090): /console, the
# admin API, /healthz, /readyz, /metrics; processor / outbound: METRICS_PORT
EXPOSE 3000 9465 9466 8090
CMD ["node", "services/ingest/src/main.ts"]
