/** The console's pages as pure functions of what the routes read: data in, escaped HTML out. */
export type { Notice } from './common.ts';
export { deadLettersPage, letterPage, type LetterGroup } from './dead-letters.ts';
export { eventSearchPage } from './events.ts';
export { orgsPage, type OrgRow } from './orgs.ts';
export { replayDonePage, replayDryRunPage, type ReplayCandidate } from './replay.ts';
export { errorPage, signInPage } from './sign-in.ts';
