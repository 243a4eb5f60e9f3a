export {
  createHubSpotApi,
  classifyHubSpotResponse,
  callClassOf,
  HubSpotCallPurpose,
  CONVERSATIONS_THREADS_PATH,
  type HubSpotApi,
  type HubSpotApiOptions,
  type Page,
} from './api.ts';
export {
  HubSpotMessage,
  HubSpotMessageContent,
  HubSpotThread,
  HubSpotThreadActivity,
  HubSpotNote,
  isTruncated,
  withOriginalContent,
  type OutgoingMessage,
} from './messages.ts';
export { parkOnRateLimit, BOOKKEEPING_MAX_WAIT_MS, createPortalClients } from './portal-clients.ts';
export { createBudgetedPortalClients, type HubSpotClientSettings } from './budgeted-clients.ts';
