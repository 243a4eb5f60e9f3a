export { createHubSpotApi, classifyHubSpotResponse, type HubSpotApi, type HubSpotApiOptions } from './api.ts';
export { HubSpotMessage, HubSpotThread, HubSpotNote, type OutgoingMessage } from './messages.ts';
export { createPortalClients } from './portal-clients.ts';
