import { Signature } from '@hubspot/api-client';

/**
 * POSTs a webhook body to ingest as HubSpot does: signed v3 with HubSpot's own SDK (an
 * independent check of ingest's verifier), the timestamp header beside it. One place for the
 * test pipeline, the chaos soak and the dev stack's sample-webhook command.
 */
export const postSignedWebhook = (
  url: string,
  body: string,
  clientSecret: string,
  options: { timestamp?: number; signal?: AbortSignal } = {},
): Promise<Response> => {
  const timestamp = options.timestamp ?? Date.now();
  const signature = Signature.getSignature('POST', 'v3', {
    signature: '',
    clientSecret,
    requestBody: body,
    url,
    timestamp,
  });
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'x-hubspot-signature-v3': signature,
      'x-hubspot-request-timestamp': String(timestamp),
    },
    body,
    ...(options.signal ? { signal: options.signal } : {}),
  });
};
