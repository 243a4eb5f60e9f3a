import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { avroRecordName, type PipelineEvent } from '../../lib/domain-events.ts';
import { readAvroSchemas } from '../../lib/registry.ts';

/**
 * The TypeScript union (lib/domain-events.ts) and the Avro schemas (schemas/) must say the same.
 * Field lists are read from the TypeScript source, so adding a field on one side only fails here.
 */
const tsFields = async (): Promise<Map<string, Set<string>>> => {
  const source = await readFile(new URL('../../lib/domain-events.ts', import.meta.url), 'utf8');
  const block = (name: string): string =>
    new RegExp(`type ${name} = ([\\s\\S]*?)\\};`).exec(source)?.[1] ?? '';
  const fieldsOf = (name: string): Set<string> => {
    const body = block(name);
    const own = [...body.matchAll(/readonly (\w+)\??:/g)].map((match) => match[1] ?? '');
    const bases = [...body.matchAll(/\b(Common|OnThread|OnTicket)\b/g)].map((match) => match[1] ?? '');
    return new Set(
      [...own, ...bases.flatMap((base) => [...fieldsOf(base)])].filter((field) => field !== 'type'),
    );
  };
  const typeNames: Record<PipelineEvent['type'], string> = {
    'customer-message': 'CustomerMessage',
    'rep-reply': 'RepReply',
    handoff: 'Handoff',
    'ticket-field-changed': 'TicketFieldChanged',
    'note-mirrored': 'NoteMirrored',
    'ai-reply': 'AiReply',
    'ticket-hold-check': 'TicketHoldCheck',
  };
  return new Map(Object.entries(typeNames).map(([type, name]) => [type, fieldsOf(name)]));
};

describe('schemas: Avro and the TypeScript domain events agree', () => {
  it('given every event type, then its Avro record has exactly the fields of its TypeScript type', async () => {
    const schemas = new Map(
      (await readAvroSchemas()).map((schema) => [
        schema.name,
        JSON.parse(schema.text) as { fields: { name: string }[] },
      ]),
    );
    const fields = await tsFields();
    for (const [type, recordName] of Object.entries(avroRecordName)) {
      const schema = schemas.get(recordName);
      assert.ok(schema, `schemas/ has ${recordName}`);
      assert.deepEqual(new Set(schema.fields.map((field) => field.name)), fields.get(type), `${type} fields`);
    }
  });

  it('given every schema file, then it parses as Avro (avsc) and has a doc for the record', async () => {
    const { default: avro } = await import('avsc');
    for (const schema of await readAvroSchemas()) {
      const parsed = JSON.parse(schema.text) as { doc?: string };
      assert.ok(parsed.doc, `${schema.file} documents its record`);
      assert.doesNotThrow(() => avro.Type.forSchema(JSON.parse(schema.text) as never), schema.file);
    }
  });
});
