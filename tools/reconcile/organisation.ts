/** The organisation an operator names, if it can be reconciled; else why not and what to do. */
import type { Org, OrgDirectory } from '../../lib/orgs/index.ts';

/** The run cannot go ahead as things are: the message says why and what to do (exit 1). */
export class CannotReconcile extends Error {
  override readonly name = 'CannotReconcile';
}

export const reconcilableOrg = (orgs: Pick<OrgDirectory, 'lookupById'>, orgId: string): Org => {
  const found = orgs.lookupById(orgId);
  switch (found.kind) {
    case 'org': {
      const { org } = found;
      if (!org.hubspot.accessToken)
        throw new CannotReconcile(
          `organisation "${orgId}" has no HubSpot access token: connect HubSpot first (the console's "Connect HubSpot", or PUT /admin/orgs/${orgId} with a private app's token)`,
        );
      if (org.hubspot.reconnectRequired)
        throw new CannotReconcile(
          `HubSpot rejected the access token of organisation "${orgId}" (reconnect required): reconnect the HubSpot app, then run this again`,
        );
      return org;
    }
    case 'unknown':
      throw new CannotReconcile(
        `organisation "${orgId}" is not known (no record on the orgs topic); check --org and KAFKA_TOPIC_PREFIX (GET /admin/orgs/${orgId} shows it)`,
      );
    case 'deleted':
      throw new CannotReconcile(
        `organisation "${orgId}" was deleted: its events are skipped by the rules; PUT it again first if that was a mistake`,
      );
    case 'unreadable':
      throw new CannotReconcile(`organisation "${orgId}" cannot be read: ${found.detail}`);
    default: {
      const unreachable: never = found;
      return unreachable;
    }
  }
};
