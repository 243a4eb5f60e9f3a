/** The seed's rules: pure functions of (event, re-fetched data, org settings) → Decision. No I/O here. */
export { IgnoreReason } from '../../../../lib/contracts/index.ts';
export { emit, ignore, type Decision } from './decision.ts';
export {
  handledEventTypes,
  parseWebhookEvent,
  type WebhookEvent,
  type NewMessageEvent,
  type ConversationPropertyChangeEvent,
  type TicketPropertyChangeEvent,
  type ObjectCreationEvent,
} from './webhook-event.ts';
export {
  routeNewMessage,
  isAutomatedSender,
  isOwnEcho,
  openCxChannelType,
  AI_MARKERS,
  EMAIL_CHANNEL_ID,
  type NewMessageContext,
} from './new-message.ts';
export { decideHandoff, type HandoffContext } from './conversation-change.ts';
export { decideTicketFieldChange, type TicketChangeContext } from './ticket-change.ts';
export { decideNoteMirror, isNoteCreation, NOTE_OBJECT_TYPE_ID, ticketOfNote } from './note-creation.ts';
export { isStaleChange } from './property-order.ts';
export { checkDeliveryPortal, type Delivery } from './delivery-portal.ts';
