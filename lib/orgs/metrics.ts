import { Gauge, type Registry } from 'prom-client';
import type { OrgDirectory } from './directory.ts';

/**
 * The directory's own gauge, registered by every service that follows the orgs topic: an
 * organisation no configured key opens has its events dead-lettered until the key is fixed.
 */
export const registerOrgDirectoryMetrics = (registry: Registry, orgs: Pick<OrgDirectory, 'unreadable'>) =>
  new Gauge({
    name: 'orgs_unreadable',
    help: 'Live organisations whose secrets neither SECRETS_KEY nor SECRETS_KEY_PREVIOUS opens (events dead-lettered as org_unreadable)',
    registers: [registry],
    collect() {
      this.set(orgs.unreadable().length);
    },
  });
