/**
 * The console's HTTP surface: lib/http-server.ts's error handler, health and metrics, the admin
 * API (routes/admin.ts, JSON) and the operator's console (routes/, HTML).
 */
import Koa from 'koa';
import Router from '@koa/router';
import type { Registry } from 'prom-client';
import { bodyDeadline, healthRoutes, jsonErrors } from '../../../lib/http-server.ts';
import type { OrgDirectory, OrgRepository } from '../../../lib/orgs/index.ts';
import { adminRoutes, consoleRoutes, type ConsoleDeps } from './routes/index.ts';

export type ConsoleAppDeps = Omit<ConsoleDeps, 'orgs' | 'orgRepository'> & {
  readonly orgs: ConsoleDeps['orgs'] & Pick<OrgDirectory, 'lookupById'>;
  readonly orgRepository: ConsoleDeps['orgRepository'] & Pick<OrgRepository, 'put' | 'delete'>;
  readonly trustProxy: boolean;
  readonly bodyTimeoutMs: number;
  readonly registry: Registry;
  readonly isReady: () => boolean;
};

export const createConsoleApp = (deps: ConsoleAppDeps): Koa => {
  // Forwarded headers decide whether the session cookie is Secure: trusted only when told.
  const app = new Koa({ proxy: deps.trustProxy });
  const router = new Router();
  app.use(jsonErrors(router, deps.logger));
  app.use(bodyDeadline(deps.bodyTimeoutMs));
  healthRoutes(router, {
    isReady: deps.isReady,
    notReadyDetail: 'the console is stopping',
    registry: deps.registry,
  });
  adminRoutes(router, deps);
  consoleRoutes(router, deps);
  app.use(router.routes());
  app.use(router.allowedMethods());
  return app;
};
