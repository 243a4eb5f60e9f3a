import type { createPageRunner, ConsoleDeps } from './console-page.ts';

/** What each area of the console's routes gets: its dependencies, the page wrapper, the read bounds. */
export type ConsoleArea = {
  readonly deps: ConsoleDeps;
  readonly page: ReturnType<typeof createPageRunner>;
  readonly reads: {
    readonly kafka: ConsoleDeps['kafka'];
    readonly codec: ConsoleDeps['codec'];
    readonly topics: ConsoleDeps['topics'];
    readonly maxRecords: number;
    readonly timeoutMs: number;
  };
};

/** The organisations not deleted, by id. */
export const liveOrgIds = (orgs: ConsoleDeps['orgs']): string[] =>
  orgs
    .storedRecords()
    .filter((stored) => !stored.deleted)
    .map((stored) => stored.orgId)
    .sort();
