import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as fixtures from '../fakes/hubspot-fixtures.ts';
import { startTestPipeline, type TestOrg, type TestPipeline } from '../support/pipeline.ts';
import { freePort, runCommand, type CommandRun } from '../support/processes.ts';

const REPROCESS = fileURLToPath(new URL('../../tools/reprocess/cli.ts', import.meta.url));
const DLQ = fileURLToPath(new URL('../../tools/dlq/dlq-cli.ts', import.meta.url));
const RECONCILE = fileURLToPath(new URL('../../tools/reconcile/cli.ts', import.meta.url));

/** An operator's command as its own process, killed if it has not exited by `deadlineMs`. */
const runTool = (
  entry: string,
  args: readonly string[],
  env: Record<string, string>,
  deadlineMs: number,
): Promise<CommandRun> => runCommand(process.execPath, [entry, ...args], env, { deadlineMs });

/** A server at a HubSpot URL that answers its root but drops every API call without an answer. */
const startSilentHubSpot = async (): Promise<{ url: string; close: () => Promise<void> }> => {
  const server: Server = createServer((request, response) => {
    if (request.url === '/') response.writeHead(404).end();
    else request.socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
};

describe("operators' tools whose upstream is unreachable say so and exit 1 in bounded time (real Kafka, registry, Redis)", function () {
  this.timeout(120000);
  let pipeline: TestPipeline;
  let org: TestOrg;

  before(async () => {
    pipeline = await startTestPipeline({ processor: false, outbound: false });
    org = await pipeline.createOrg();
    // Customer messages on the raw topic, never processed: each needs HubSpot to be decided.
    const messages = ['Where is my order?', 'Hello?', 'Is anyone there?'].map((text) =>
      fixtures.message({ kind: 'customer-chat', text }),
    );
    const response = await pipeline.postBatch(
      messages.map((message) => fixtures.webhookEventFor(message, { portalId: org.portalId })),
    );
    assert.equal(response.status, 200);
  });
  after(async () => {
    await pipeline?.stop();
  });

  it('regression: given HUBSPOT_API_BASE_URL at a closed port, when reprocess runs as an operator runs it, then it names HubSpot and its URL and exits 1 within seconds, with no report', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    // The processor's own retry settings (the test pipeline's are shortened): an operator's run.
    const env = { ...pipeline.env, HUBSPOT_API_BASE_URL: closed, HUBSPOT_RETRY_INITIAL_MS: '' };

    const run = await runTool(REPROCESS, ['--org', org.orgId, '--since', '30m', '--dry-run'], env, 60000);

    assert.equal(run.code, 1, `exit code ${run.code} after ${run.ms} ms; stderr: ${run.stderr}`);
    assert.ok(run.ms < 20000, `exited after ${run.ms} ms`);
    assert.match(
      run.stderr,
      new RegExp(
        `^reprocess: HubSpot at ${closed.replace(/\./g, '\\.')} cannot be reached \\(.*ECONNREFUSED.*\\); check HUBSPOT_API_BASE_URL$`,
        'm',
      ),
    );
    assert.equal(run.stdout, '', 'no report of events it could not decide');
  });

  it('given a HubSpot that stops answering once the run has started, when reprocess decides the first event, then it stops there and exits 1 naming HubSpot, instead of retrying every event', async () => {
    const silent = await startSilentHubSpot();
    try {
      const run = await runTool(
        REPROCESS,
        ['--org', org.orgId, '--since', '30m', '--dry-run'],
        { ...pipeline.env, HUBSPOT_API_BASE_URL: silent.url },
        60000,
      );

      assert.equal(run.code, 1, `exit code ${run.code} after ${run.ms} ms; stderr: ${run.stderr}`);
      assert.match(
        run.stderr,
        /^reprocess: HubSpot at http:\/\/127\.0\.0\.1:\d+ kept failing through 6 attempts of one call \(GET message \S+: HubSpot unreachable: .*\): stopped at raw event \d+@\d+, nothing written; check HUBSPOT_API_BASE_URL$/m,
      );
      assert.equal(run.stdout, '', 'no report: the run stopped');
    } finally {
      await silent.close();
    }
  });

  it('given SCHEMA_REGISTRY_URL at a closed port, when reprocess or dlq list runs, then each names the registry and exits 1, not a report of undecodable records', async () => {
    const closed = `http://127.0.0.1:${await freePort()}/apis/ccompat/v7`;
    const env = { ...pipeline.env, SCHEMA_REGISTRY_URL: closed };

    const [reprocess, dlq] = await Promise.all([
      runTool(REPROCESS, ['--org', org.orgId, '--since', '30m', '--dry-run'], env, 60000),
      runTool(DLQ, ['list'], env, 60000),
    ]);

    for (const [name, run] of [
      ['reprocess', reprocess],
      ['dlq', dlq],
    ] as const) {
      assert.equal(run.code, 1, `${name}: exit code ${run.code} after ${run.ms} ms; stderr: ${run.stderr}`);
      assert.ok(run.ms < 20000, `${name} exited after ${run.ms} ms`);
      assert.match(
        run.stderr,
        new RegExp(
          `^${name}: the schema registry at ${closed.replace(/\./g, '\\.')} cannot be reached \\(.*ECONNREFUSED.*\\); check SCHEMA_REGISTRY_URL$`,
          'm',
        ),
      );
      assert.equal(run.stdout, '');
    }
  });

  it('given HubSpot, Kafka or Redis at a closed port, when reconcile runs, then it names that system, where it looked and what to check, and exits 1 within seconds', async () => {
    const [hubspot, kafka, redis] = await Promise.all([freePort(), freePort(), freePort()]);
    const args = ['--org', org.orgId, '--since', '30m', '--dry-run'];
    const cases = [
      {
        env: { ...pipeline.env, HUBSPOT_API_BASE_URL: `http://127.0.0.1:${hubspot}` },
        line: `^reconcile: HubSpot at http://127\\.0\\.0\\.1:${hubspot} cannot be reached \\(.*ECONNREFUSED.*\\); check HUBSPOT_API_BASE_URL$`,
      },
      {
        env: { ...pipeline.env, KAFKA_BROKERS: `127.0.0.1:${kafka}` },
        line: `^reconcile: cannot reach Kafka at 127\\.0\\.0\\.1:${kafka} \\(.*\\); check KAFKA_BROKERS$`,
      },
      {
        // The single Redis of REDIS_URL, whatever topology the test run gives the services.
        env: {
          ...pipeline.env,
          REDIS_URL: `redis://127.0.0.1:${redis}`,
          REDIS_CLUSTER_NODES: undefined,
          REDIS_SENTINELS: undefined,
          REDIS_SENTINEL_NAME: undefined,
        },
        line: `^reconcile: cannot reach Redis at redis://127\\.0\\.0\\.1:${redis}/? \\(.*\\); check REDIS_URL`,
      },
    ];

    const runs = await Promise.all(
      cases.map(({ env }) => runCommand(process.execPath, [RECONCILE, ...args], env, { deadlineMs: 60000 })),
    );

    for (const [index, run] of runs.entries()) {
      const { line } = cases[index] ?? { line: '' };
      assert.equal(run.code, 1, `exit code ${run.code} after ${run.ms} ms; stderr: ${run.stderr}`);
      assert.ok(run.ms < 20000, `exited after ${run.ms} ms`);
      assert.match(run.stderr, new RegExp(line, 'm'));
      assert.equal(run.stdout, '', 'no report');
    }
  });
});
