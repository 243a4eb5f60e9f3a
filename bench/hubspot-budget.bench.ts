// Issue 8, "HubSpot calls are a budget": one HubSpot batch of 100 new conversations on one portal
// with the default limit (100 calls per rolling 10 s) enforced by our limiter AND by the fake
// HubSpot. Prints, per run: when the 100 first messages were at OpenCX, when the 100 AI answers
// were posted back, when the owed ticket look-ups were made, and the HubSpot calls by purpose.
// Prints figures; asserts nothing (test/integration/hubspot-budget.int.spec.ts asserts the order).
import * as fixtures from '../test/fakes/hubspot-fixtures.ts';
import { startTestPipeline, waitFor } from '../test/support/pipeline.ts';
import { benchInfra, envInt, median, progress, hubspotCallsByPurpose } from './support.ts';

const CONVERSATIONS = envInt('BENCH_CONVERSATIONS', 100);
const ROUNDS = envInt('BENCH_ROUNDS', 3);
const THREADS = '/conversations/v3/conversations/threads/';

type Run = { opencxMs: number; postedMs: number; lookedUpMs: number; callsBeforeOpencx: string };

const oneRun = async (): Promise<Run> => {
  benchInfra();
  const pipeline = await startTestPipeline({ env: { LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent' } });
  try {
    const org = await pipeline.createOrg();
    pipeline.hubspot.setRateLimit(org.portalId, { max: 100, intervalMs: 10_000 });
    const events = Array.from({ length: CONVERSATIONS }, (_, i) => {
      const threadId = fixtures.newThreadId();
      // Half the threads already have a ticket: their look-ups link it.
      pipeline.hubspot.setThread(
        fixtures.thread({
          id: threadId,
          ...(i % 2 === 0 ? { threadAssociations: { associatedTicketId: String(1_600_000_000 + i) } } : {}),
        }),
        { portalId: org.portalId },
      );
      const message = fixtures.message({ threadId, kind: 'customer-chat', text: `Where is order ${i}?` });
      pipeline.hubspot.addMessage(message, { portalId: org.portalId });
      return fixtures.webhookEventFor(message, { portalId: org.portalId });
    });
    const started = Date.now();
    const response = await pipeline.postBatch(events);
    if (response.status !== 200) throw new Error(`ingest answered ${response.status}`);
    const sent = () => pipeline.opencx.effects.filter((effect) => effect.kind === 'message-sent');
    await waitFor('every message at OpenCX', () => sent().length >= CONVERSATIONS, 120_000, 50);
    const opencxAt = Math.max(...sent().map((effect) => effect.at));
    await waitFor(
      'every AI answer posted',
      () => pipeline.hubspot.posted.length >= CONVERSATIONS,
      120_000,
      100,
    );
    const postedAt = Math.max(...pipeline.hubspot.posted.map((entry) => entry.at));
    const lookUps = () =>
      pipeline.hubspot.requests.filter((r) => r.query.association === 'TICKET' && r.path.startsWith(THREADS));
    await waitFor(
      'every thread looked up',
      () => new Set(lookUps().map((r) => r.path)).size >= CONVERSATIONS,
      120_000,
      100,
    );
    const lookedUpAt = Math.max(...lookUps().map((r) => r.at));
    return {
      opencxMs: opencxAt - started,
      postedMs: postedAt - started,
      lookedUpMs: lookedUpAt - started,
      callsBeforeOpencx: hubspotCallsByPurpose(pipeline.hubspot.requests.filter((r) => r.at <= opencxAt)),
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
    `run ${round}: ${CONVERSATIONS} new conversations at OpenCX in ${run.opencxMs} ms, AI answers posted in ${run.postedMs} ms, tickets looked up in ${run.lookedUpMs} ms; HubSpot calls before the last message was at OpenCX: ${run.callsBeforeOpencx}`,
  );
}
console.table({
  'at OpenCX (ms, median)': median(runs.map((run) => run.opencxMs)),
  'AI answers posted (ms, median)': median(runs.map((run) => run.postedMs)),
  'tickets looked up (ms, median)': median(runs.map((run) => run.lookedUpMs)),
});
process.exit(0);
