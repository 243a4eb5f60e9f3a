export {
  createHubSpotApi,
  classifyHubSpotResponse,
  CONVERSATIONS_THREADS_PATH,
  type HubSpotApi,
  type HubSpotApiOptions,
} from './api.ts';
export {
  HubSpotMessage,
  HubSpotMessageContent,
  HubSpotThread,
  HubSpotNote,
  isTruncated,
  withOriginalContent,
  type OutgoingMessage,
} from './messages.ts';
export { createPortalClients } from './portal-clients.ts';
