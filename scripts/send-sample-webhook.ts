/**
 * `npm run demo:webhook -- [--sandbox URL] "text"`: asks the dev stack's sandbox HubSpot for a new
 * customer message, then POSTs its webhook to ingest signed (v3) with HubSpot's own SDK, as
 * HubSpot would. `npm start` prints this command as it works on the machine it runs on (with
 * --sandbox when SANDBOX_CONTROL_PORT moved the sandbox's control endpoint).
 */
import { parseArgs } from 'node:util';
import { postSignedWebhook } from '../test/support/signed-delivery.ts';
import { DEFAULT_SANDBOX_URL } from './dev-supervisor.ts';

const main = async (): Promise<void> => {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: { sandbox: { type: 'string' } },
  });
  const sandbox = values.sandbox ?? DEFAULT_SANDBOX_URL;
  const text = positionals.join(' ') || 'Hello, where is my order?';
  const created = await fetch(sandbox, { method: 'POST', body: JSON.stringify({ text }) }).catch(() => {
    throw new Error(
      `no dev stack answers at ${sandbox}: start it with \`npm start\` first (and use the command it prints)`,
    );
  });
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
