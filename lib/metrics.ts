import { createServer, type Server } from 'node:http';
import { Registry, collectDefaultMetrics } from 'prom-client';

/** A registry per service instance, so tests can run several services in one process. */
export const createMetricsRegistry = (service: string): Registry => {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
};

/** What GET /readyz reports: 200 when ready, else 503 with why. */
export type ReadinessProbe = () => {
  readonly ready: boolean;
  readonly dependencies: Readonly<Record<string, unknown>>;
  readonly detail?: string;
};

/**
 * Serves GET /metrics on its own port (services without an HTTP API of their own), with
 * GET /healthz (liveness: the process answers; always 200) and GET /readyz (readiness: 503
 * while a dependency has been unreachable past its grace period and the replica has stepped
 * out of its consumer groups).
 */
export const serveMetrics = async (
  registry: Registry,
  port: number,
  readiness: ReadinessProbe = () => ({ ready: true, dependencies: {} }),
): Promise<Server> => {
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(body);
        })
        .catch((error: unknown) => {
          res.writeHead(500);
          res.end(String(error));
        });
      return;
    }
    if (req.url === '/readyz') {
      const { ready, dependencies, detail } = readiness();
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify(
          ready
            ? { status: 'ready', dependencies }
            : {
                error: 'not_ready',
                detail: detail ?? 'a dependency is unreachable: out of the consumer groups',
                dependencies,
              },
        ),
      );
      return;
    }
    res.writeHead(req.url === '/healthz' ? 200 : 404, { 'content-type': 'application/json' });
    res.end(req.url === '/healthz' ? '{"status":"ok"}' : '{"error":"not_found"}');
  });
  await new Promise<void>((resolve) => server.listen(port, '0.0.0.0', resolve));
  return server;
};

export const closeServer = (server: Server): Promise<void> =>
  new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
