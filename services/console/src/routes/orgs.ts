/** /console/orgs: every organisation with its connection and recent activity; its settings form. */
import type { Context } from 'koa';
import type Router from '@koa/router';
import { HttpError } from '../../../../lib/http-server.ts';
import type { Org } from '../../../../lib/orgs/index.ts';
import { installLink } from '../../../../lib/signed-tokens.ts';
import { readActivity } from '../activity.ts';
import { orgsPage, type Notice, type OrgRow } from '../pages/index.ts';
import { liveOrgIds, type ConsoleArea } from './area.ts';
import { queryText, seeOther, send } from './console-page.ts';

const connectionOf = (org: Org): OrgRow['connection'] =>
  org.hubspot.refreshToken !== undefined
    ? 'OAuth app'
    : org.hubspot.accessToken !== undefined || org.hubspot.privateAppClientSecret !== undefined
      ? 'private app'
      : 'not connected';

const savedNotice = (ctx: Context): Notice | undefined => {
  const saved = queryText(ctx, 'saved');
  if (saved === undefined) return undefined;
  return queryText(ctx, 'outcome') === 'unchanged'
    ? { kind: 'ok', text: `Settings of ${saved}: nothing changed.` }
    : { kind: 'ok', text: `Settings of ${saved} saved.` };
};

export const orgRoutes = (router: Router, { deps, page, reads }: ConsoleArea): void => {
  const { logger } = deps;

  router.get(
    '/console/orgs',
    page(async (ctx, { csrf }) => {
      // The watermarks table follows its topic live; caught up here so a run that just ended shows.
      const [activity, reconcileCurrent] = await Promise.all([
        readActivity({ ...reads, from: deps.now() - 60 * 60 * 1000 }),
        deps.watermarks.catchUp(),
      ]);
      const live = liveOrgIds(deps.orgs)
        .flatMap((orgId) => {
          const found = deps.orgs.lookupById(orgId);
          return found.kind === 'org' ? [found.org] : [];
        })
        .sort((a, b) => a.orgId.localeCompare(b.orgId));
      const rows = live.map((org): OrgRow => {
        const seen = activity.byKey.get(org.orgId);
        return {
          orgId: org.orgId,
          portalId: org.hubspot.portalId,
          connection: connectionOf(org),
          reconnectRequired: org.hubspot.reconnectRequired,
          assistMode: org.settings.assistMode,
          ticketingEnabled: org.settings.ticketingEnabled,
          installUrl: deps.installGrants
            ? installLink(deps.installGrants, deps.ingestPublicUrl, org.orgId)
            : undefined,
          events: seen?.events ?? 0,
          lastEventAt: seen?.lastEventAt,
          deadLetters: seen?.deadLetters ?? 0,
          reconcile: deps.watermarks.get(org.orgId),
        };
      });
      send(
        ctx,
        orgsPage({
          csrf,
          rows,
          unreadable: deps.orgs.unreadable(),
          unrouted: [...activity.byKey]
            .filter(([key, seen]) => key.startsWith('portal:') && seen.events > 0)
            .map(([key, seen]) => ({ key, events: seen.events })),
          reads: activity.reads,
          reconcileCurrent,
          oauthConfigured: deps.installGrants !== undefined,
          notice: savedNotice(ctx),
        }),
      );
    }),
  );

  router.post(
    '/console/orgs/:orgId/settings',
    page(
      async (ctx, _signedIn, form) => {
        const orgId = ctx.params.orgId ?? '';
        const outcome = await deps.orgRepository.updateSettings(orgId, {
          assistMode: form?.get('assistMode') === 'on',
          ticketingEnabled: form?.get('ticketingEnabled') === 'on',
        });
        if (outcome === 'unknown')
          throw new HttpError(404, 'unknown_org', `There is no organisation ${orgId}.`);
        logger.info({ orgId, outcome }, 'console: organisation settings edited');
        seeOther(ctx, `/console/orgs?saved=${encodeURIComponent(orgId)}&outcome=${outcome}`);
      },
      { form: true },
    ),
  );
};
