import { IgnoreReason, WebhookRoute } from '../../../../lib/contracts/index.ts';

/** Where a raw record came from: ingest's route, and the portal the event names. */
export type Delivery = { readonly route: WebhookRoute; readonly portalId: number };

/**
 * A private-app URL belongs to one organisation, so ingest routes its events to that
 * organisation whatever portal they name. An event naming another portal (a private app
 * installed in the wrong portal, or a URL copied to another account) would act on the wrong
 * HubSpot account's objects with this organisation's token: skipped.
 */
export const checkDeliveryPortal = (delivery: Delivery, orgPortalId: number): IgnoreReason | undefined =>
  delivery.route === WebhookRoute.privateApp && delivery.portalId !== orgPortalId
    ? IgnoreReason.portalMismatch
    : undefined;
