// Ticket changes and notes whose ticket's link is learned late: one batch of 100 new
// conversations on one portal (each with its ticket associated), then 200 ms later a change and a
// note on every ticket, with the default HubSpot limit (100 calls per rolling 10 s) enforced by
// our limiter AND by the fake HubSpot. Prints, per run: how many events outbound held, how long
// the changes and notes took from their webhook to their session (p50, p99, last), when the first
// messages and the AI answers were done, and the HubSpot calls by purpose.
// Prints figures; asserts nothing (test/integration/held-ticket-events.int.spec.ts asserts the outcome).
import {
  BUSY_PORTAL_CONVERSATIONS,
  busyPortal,
  sendBusyPortal,
  ticketEffectsAt,
} from '../test/support/busy-portal.ts';
import { startTestPipeline, waitFor } from '../test/support/pipeline.ts';
import {
  benchInfra,
  envInt,
  median,
  percentile,
  printTable,
  progress,
  hubspotCallsByPurpose,
} from './support.ts';

const ROUNDS = envInt('BENCH_ROUNDS', 3);

type Run = {
  held: number;
  released: number;
  waitP50Ms: number;
  waitP99Ms: number;
  lastMs: number;
  messagesMs: number;
  repliesMs: number;
  calls: string;
};

const oneRun = async (): Promise<Run> => {
  benchInfra();
  const pipeline = await startTestPipeline({ env: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent' } });
  try {
    const org = await pipeline.createOrg();
    pipeline.hubspot.setRateLimit(org.portalId, { max: 100, intervalMs: 10_000 });
    const conversations = busyPortal(pipeline, org);
    const started = Date.now();
    const sentAt = await sendBusyPortal(pipeline, conversations);
    const effects = () => ticketEffectsAt(pipeline, conversations);
    await waitFor(
      'every change and note at its session',
      () => effects().every(({ changeAt, noteAt }) => changeAt !== undefined && noteAt !== undefined),
      300_000,
      100,
    );
    const waits = effects().flatMap(({ changeAt, noteAt }) => [
      (changeAt ?? 0) - sentAt,
      (noteAt ?? 0) - sentAt,
    ]);
    const sent = pipeline.opencx.effects.filter((effect) => effect.kind === 'message-sent');
    await waitFor(
      'every AI answer posted',
      () => pipeline.hubspot.posted.length >= BUSY_PORTAL_CONVERSATIONS,
      300_000,
      100,
    );
    return {
      held: await pipeline.counter('outbound', 'outbound_held_ticket_events_total', { outcome: 'held' }),
      released: await pipeline.counter('outbound', 'outbound_held_ticket_events_total', {
        outcome: 'released',
      }),
      waitP50Ms: percentile(waits, 50),
      waitP99Ms: percentile(waits, 99),
      lastMs: Math.max(...waits),
      messagesMs: Math.max(...sent.map((effect) => effect.at)) - started,
      repliesMs: Math.max(...pipeline.hubspot.posted.map((entry) => entry.at)) - started,
      calls: hubspotCallsByPurpose(pipeline.hubspot.requests),
    };
  } finally {
    await pipeline.stop();
  }
};

const runs: Run[] = [];
for (let round = 1; round <= ROUNDS; round++) {
  const run = await oneRun();
  runs.push(run);
  progress(
    `run ${round}: held ${run.held} of ${2 * BUSY_PORTAL_CONVERSATIONS} (released ${run.released}); webhook → session p50 ${run.waitP50Ms} ms, p99 ${run.waitP99Ms} ms, last ${run.lastMs} ms; first messages at OpenCX in ${run.messagesMs} ms, AI answers posted in ${run.repliesMs} ms; HubSpot calls: ${run.calls}`,
  );
}
printTable(`held ticket events, medians of ${ROUNDS} runs`, [
  {
    held: median(runs.map((run) => run.held)),
    released: median(runs.map((run) => run.released)),
    'p50 ms': median(runs.map((run) => run.waitP50Ms)),
    'p99 ms': median(runs.map((run) => run.waitP99Ms)),
    'last ms': median(runs.map((run) => run.lastMs)),
    'messages at OpenCX ms': median(runs.map((run) => run.messagesMs)),
    'AI answers posted ms': median(runs.map((run) => run.repliesMs)),
  },
]);
process.exit(0);
