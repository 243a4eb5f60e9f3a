import { Signature } from '@hubspot/api-client';

/**
 * The headers HubSpot sends with a webhook body: signed v3 with HubSpot's own SDK (an
 * independent check of ingest's verifier), the timestamp header beside it. The ingest
 * benchmark signs its request pool with it ahead of the load.
 */
export const signedWebhookHeaders = (
  url: string,
  body: string,
  clientSecret: string,
  timestamp: number = Date.now(),
): Record<string, string> => ({
  'content-type': 'application/json',
  'x-hubspot-signature-v3': Signature.getSignature('POST', 'v3', {
    signature: '',
    clientSecret,
    requestBody: body,
    url,
    timestamp,
  }),
  'x-hubspot-request-timestamp': String(timestamp),
});

/**
 * POSTs a webhook body to ingest as HubSpot does (signedWebhookHeaders). One place for the
 * test pipeline, the chaos soak and the dev stack's sample-webhook command.
 */
export const postSignedWebhook = (
  url: string,
  body: string,
  clientSecret: string,
  options: { timestamp?: number; signal?: AbortSignal } = {},
): Promise<Response> =>
  fetch(url, {
    method: 'POST',
    headers: signedWebhookHeaders(url, body, clientSecret, options.timestamp),
    body,
    ...(options.signal ? { signal: options.signal } : {}),
  });
