/**
 * `npm run demo:webhook -- "text"`: asks the dev stack's sandbox HubSpot for a new customer
 * message, then POSTs its webhook to ingest signed (v3) with HubSpot's own SDK, as HubSpot would.
 */
import { postSignedWebhook } from '../test/support/signed-delivery.ts';

const SANDBOX_CONTROL = 'http://127.0.0.1:4099';
const text = process.argv.slice(2).join(' ') || 'Hello, where is my order?';

const main = async (): Promise<void> => {
  const created = await fetch(SANDBOX_CONTROL, { method: 'POST', body: JSON.stringify({ text }) }).catch(
    () => {
      throw new Error('the dev stack is not running: start it with `npm start` first');
    },
  );
  const { event, secret, ingestUrl } = (await created.json()) as {
    event: object;
    secret: string;
    ingestUrl: string;
  };
  const url = `${ingestUrl}/webhooks/hubspot`;
  const body = JSON.stringify([event]);
  const response = await postSignedWebhook(url, body, secret);
  process.stdout.write(`POST ${url} → ${response.status} ${await response.text()}\n`);
  process.stdout.write(`sent: ${body}\n`);
  if (!response.ok) process.exit(1);
};

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
