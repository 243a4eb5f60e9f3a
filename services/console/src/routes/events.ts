/** /console/events: the event search over a time window. */
import type Router from '@koa/router';
import { searchEvents, type EventQuery } from '../event-search.ts';
import { eventSearchPage } from '../pages/index.ts';
import { liveOrgIds, type ConsoleArea } from './area.ts';
import { queryText, send } from './console-page.ts';

/** `YYYY-MM-DDTHH:MM` from a datetime-local field, read as UTC. */
const parseUtcInput = (text: string | undefined): number | undefined => {
  if (text === undefined) return undefined;
  const parsed = Date.parse(/Z$|[+-]\d\d:\d\d$/.test(text) ? text : `${text}Z`);
  return Number.isNaN(parsed) ? undefined : parsed;
};

export const eventRoutes = (router: Router, { deps, page, reads }: ConsoleArea): void => {
  router.get(
    '/console/events',
    page(async (ctx, { csrf }) => {
      const now = deps.now();
      const to = parseUtcInput(queryText(ctx, 'to')) ?? now;
      const from = parseUtcInput(queryText(ctx, 'from')) ?? to - 60 * 60 * 1000;
      const query: EventQuery = {
        orgId: queryText(ctx, 'org'),
        from,
        to,
        threadId: queryText(ctx, 'thread'),
        ticketId: queryText(ctx, 'ticket'),
        eventId: queryText(ctx, 'event'),
        messageId: queryText(ctx, 'message'),
      };
      const base = {
        csrf,
        query,
        window: { from: queryText(ctx, 'from'), to: queryText(ctx, 'to') },
        orgIds: liveOrgIds(deps.orgs),
        maxRecords: deps.limits.maxRecords,
      };
      if (queryText(ctx, 'search') === undefined && query.orgId === undefined)
        return send(ctx, eventSearchPage({ ...base, result: undefined }));
      if (from >= to)
        return send(
          ctx,
          eventSearchPage({
            ...base,
            result: undefined,
            error: 'The window is empty: "From" must be before "To".',
          }),
          400,
        );
      const result = await searchEvents({
        ...reads,
        orgOfPortal: (portalId) => deps.orgs.byPortal(portalId)?.orgId,
        query,
        now,
      });
      send(ctx, eventSearchPage({ ...base, result }));
    }),
  );
};
