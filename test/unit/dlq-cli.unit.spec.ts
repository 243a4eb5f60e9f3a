import assert from 'node:assert/strict';
import type { ArchivedDeadLetter } from '../../lib/dead-letters/index.ts';
import { parseCommand } from '../../tools/dlq/arguments.ts';
import { formatLetter, formatSummary, idOf, letterAsJson, summaryAsJson } from '../../tools/dlq/render.ts';

const now = Date.parse('2026-12-07T12:00:00Z');

const archived = (reason: string, offset: string): ArchivedDeadLetter => ({
  topic: 'pipeline.dead-letters',
  partition: 0,
  offset,
  letter: {
    service: 'processor',
    sourceTopic: 'hubspot.webhook-events',
    partition: 1,
    offset,
    key: Buffer.from('org-1'),
    value: Buffer.from('raw'),
    headers: null,
    reason,
    error: 'cannot decode\n  an Avro record',
    attempts: 1,
    orgId: 'org-1',
    eventType: null,
    eventId: null,
    failedAt: now,
  },
});

describe('npm run dlq: arguments and rendering', () => {
  it('given list with filters, when parsed, then the filter holds each', () => {
    assert.deepEqual(
      parseCommand(['list', '--org', 'org-1', '--since', '2h', '--limit', '5', '--json'], now),
      {
        command: 'list',
        filter: { orgId: 'org-1', since: now - 2 * 3600_000, limit: 5 },
        json: true,
      },
    );
  });

  it('given replay without a rate, when parsed, then the default rate and no dry run', () => {
    const command = parseCommand(['replay'], now);
    assert.equal(command.command, 'replay');
    assert.equal(command.command === 'replay' && command.dryRun, false);
    assert.ok(command.command === 'replay' && command.ratePerSecond > 0);
  });

  it('given bad usage, when parsed, then an error naming the first thing wrong', () => {
    assert.throws(() => parseCommand([], now), /missing command/);
    assert.throws(() => parseCommand(['list', '--rate', '3'], now), /--rate is for replay only/);
    assert.throws(() => parseCommand(['show', 'xyz'], now), /not a letter id/);
    assert.throws(() => parseCommand(['list', '--limit', '0'], now), /not a positive whole number/);
  });

  it('given letters, when rendered, then one line each (error flattened), a count by reason, and the same as JSON', () => {
    const letters = [
      archived('undecodable', '3'),
      archived('handler_crashed', '4'),
      archived('undecodable', '5'),
    ];
    const line = formatLetter(letters[0] as ArchivedDeadLetter);
    assert.match(
      line,
      /undecodable {2}org=org-1 .* from=hubspot\.webhook-events\/1@3 {2}id=[0-9a-f]{12} {2}cannot decode an Avro record$/,
    );
    assert.equal(formatSummary(letters), '3 dead letters: handler_crashed 1, undecodable 2');
    assert.equal(formatSummary([]), 'no dead letters match');
    assert.deepEqual(summaryAsJson(letters), { undecodable: 2, handler_crashed: 1 });
    assert.equal(letterAsJson(letters[0] as ArchivedDeadLetter).id, idOf(letters[0] as ArchivedDeadLetter));
  });
});
