import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import fc from 'fast-check';
import type { z } from 'zod';
import {
  checkHubSpotMessage,
  checkHubSpotMessageContent,
  type Checked,
} from '../../lib/hubspot/message-check.ts';
import { HubSpotMessage, HubSpotMessageContent } from '../../lib/hubspot/messages.ts';
import { message, truncatedEmail, type MessageKind } from '../fakes/hubspot-fixtures.ts';

/**
 * The hand checks of lib/hubspot/message-check.ts replace zod on the processor's re-fetch of
 * every message, so they must be the zod schemas exactly: for any input, both accept or both
 * reject, and what they return is deep-equal (same keys present, undefined kept, numbers turned
 * into strings, unknown keys copied, no own `__proto__`, same prototype), keys in the same order.
 */

const inspectAll = {
  depth: Infinity,
  maxArrayLength: Infinity,
  maxStringLength: Infinity,
  breakLength: Infinity,
};

/** Both agree on `input`; returns whether it was accepted. */
const agree = (schema: z.ZodType, check: (json: unknown) => Checked<unknown>, input: unknown): boolean => {
  const expected = schema.safeParse(input);
  const actual = check(input);
  assert.equal(
    actual.success,
    expected.success,
    `zod ${expected.success ? 'accepts' : `rejects (${JSON.stringify(expected.error.issues[0])})`}, the check ${actual.success ? 'accepts' : `rejects (${actual.message})`}`,
  );
  if (actual.success && expected.success) {
    assert.deepEqual(actual.data, expected.data);
    // deepEqual ignores the order of keys; their printed form does not (a JSON text would differ).
    assert.equal(
      inspect(actual.data, inspectAll),
      inspect(expected.data, inspectAll),
      'keys in the same order',
    );
  }
  return actual.success;
};
const agreeOnMessage = (input: unknown): boolean => agree(HubSpotMessage, checkHubSpotMessage, input);
const agreeOnContent = (input: unknown): boolean =>
  agree(HubSpotMessageContent, checkHubSpotMessageContent, input);

/** The answer as it comes over HTTP, when the value has a JSON text (a bigint has none). */
const viaJson = (input: unknown): unknown => {
  try {
    const text = JSON.stringify(input);
    return text === undefined ? undefined : JSON.parse(text);
  } catch {
    return undefined;
  }
};

/** A generated key that is left out of its object. */
const ABSENT = Symbol('absent');

/** Values of the wrong kind for any field (or of the right kind by chance). */
const junk: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(ABSENT, undefined, null, true, false, '', 0, -0, NaN, Infinity, -Infinity, [], {}),
  fc.string(),
  fc.double(),
  fc.integer(),
  fc.bigInt(),
  fc.date(),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.sparseArray(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
);

/** How a field's value is drawn: always of its declared kind, or now and then anything. */
type Mode = (valid: fc.Arbitrary<unknown>) => fc.Arbitrary<unknown>;
const validOnly: Mode = (valid) => valid;
const sometimesWrong: Mode = (valid) =>
  fc.oneof({ arbitrary: valid, weight: 12 }, { arbitrary: junk, weight: 1 });

const nullish = (valid: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: valid, weight: 3 }, fc.constantFrom(null, undefined, ABSENT));
const finite = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(-0, 1e21, 2 ** 60, Number.MAX_VALUE),
);
const stringOrNumber = fc.oneof(fc.string(), finite);

/** Keys that are no field of the schema, or that a careless copy would mishandle. */
const extraKey = fc.oneof(
  fc.string(),
  fc.constantFrom(
    '__proto__',
    'constructor',
    'toString',
    'hasOwnProperty',
    '0',
    '10',
    'attachments',
    'archived',
  ),
);

/**
 * A looseObject's value: its declared fields (each drawn through `mode`; ABSENT ones left out)
 * and up to three other keys. When `mode` may be wrong, another key may also take a declared
 * field's place. Keys are defined, not assigned, so `__proto__` becomes an own key as
 * JSON.parse makes it. The other keys are now and then inherited (zod reads `for…in` and
 * `key in input`), and the object may have no prototype.
 */
const looseObject = (mode: Mode, fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> => {
  const declared = Object.keys(fields);
  const others = fc.array(
    fc.tuple(
      mode === validOnly
        ? extraKey.filter((key) => !declared.includes(key))
        : fc.oneof(extraKey, fc.constantFrom(...declared)),
      fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant(undefined)),
    ),
    { maxLength: 3 },
  );
  const drawn = fc.tuple(...declared.map((key) => mode(fields[key] ?? fc.constant(ABSENT))));
  const prototype = fc.constantFrom('plain', 'inherited', 'none');
  return fc.tuple(drawn, others, prototype).map(([values, extra, prototype]) => {
    const inherited: Record<string, unknown> = {};
    const out = Object.create(
      prototype === 'none' ? null : prototype === 'inherited' ? inherited : Object.prototype,
    ) as Record<string, unknown>;
    const define = (target: object, key: string, value: unknown) =>
      Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
    declared.forEach((key, i) => {
      if (values[i] !== ABSENT) define(out, key, values[i]);
    });
    for (const [key, value] of extra)
      if (!Object.hasOwn(out, key)) define(prototype === 'inherited' ? inherited : out, key, value);
    return out;
  });
};

/** An array field: `.default([])`, so ABSENT and undefined are fine, null is not. */
const arrayOf = (mode: Mode, item: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof(
    { arbitrary: fc.array(mode(item), { maxLength: 3 }), weight: 4 },
    fc.constantFrom(ABSENT, undefined),
  );

const messageOf = (mode: Mode): fc.Arbitrary<unknown> => {
  const deliveryIdentifier = looseObject(mode, { type: fc.string(), value: fc.string() });
  return looseObject(mode, {
    id: fc.string(),
    type: fc.oneof(fc.constantFrom('MESSAGE', 'COMMENT', 'WELCOME_MESSAGE'), fc.string()),
    text: nullish(fc.string()),
    richText: nullish(fc.string()),
    subject: nullish(fc.string()),
    direction: nullish(fc.oneof(fc.constantFrom('INCOMING', 'OUTGOING'))),
    channelId: nullish(stringOrNumber),
    channelAccountId: nullish(stringOrNumber),
    conversationsThreadId: nullish(stringOrNumber),
    createdAt: nullish(fc.string()),
    createdBy: nullish(fc.string()),
    client: nullish(
      looseObject(mode, {
        clientType: nullish(fc.constantFrom('HUBSPOT', 'INTEGRATION', 'SYSTEM')),
        integrationAppId: nullish(finite),
      }),
    ),
    senders: arrayOf(
      mode,
      looseObject(mode, {
        actorId: fc.string(),
        name: nullish(fc.string()),
        deliveryIdentifier: nullish(deliveryIdentifier),
      }),
    ),
    recipients: arrayOf(mode, looseObject(mode, { actorId: nullish(fc.string()) })),
    truncationStatus: nullish(
      fc.constantFrom('NOT_TRUNCATED', 'TRUNCATED', 'TRUNCATED_TO_MOST_RECENT_REPLY'),
    ),
  });
};

/** Reports fast-check's counterexample in one line (its own report prints whole inputs). */
const holds = (property: fc.IProperty<[unknown]>, numRuns: number): void => {
  const details = fc.check(property, { numRuns, endOnFailure: true });
  if (details.failed)
    assert.fail(
      `${details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)}\ncounterexample: ${fc.stringify(details.counterexample?.[0])}\n(seed ${details.seed}, path ${details.counterexamplePath})`,
    );
};

describe('HubSpot message check: the hand check is the zod schema it replaces', () => {
  it('given messages of the declared shape (any optional, null, numeric or unknown variant), then both accept them and return the same data', () => {
    holds(
      fc.property(messageOf(validOnly), (input) => {
        assert.ok(agreeOnMessage(input), 'a message of the declared shape is accepted');
        assert.ok(agreeOnMessage(viaJson(input)), 'and its JSON text too');
      }),
      1000,
    );
  });

  it('given messages with wrong, missing or extra fields anywhere, then both accept or both reject, and accepted ones give the same data', () => {
    let accepted = 0;
    let rejected = 0;
    holds(
      fc.property(messageOf(sometimesWrong), (input) => {
        if (agreeOnMessage(input)) accepted++;
        else rejected++;
        agreeOnMessage(viaJson(input));
      }),
      2000,
    );
    // Both sides were reached, or the generator has drifted into testing one only.
    assert.ok(accepted > 200 && rejected > 200, `accepted ${accepted}, rejected ${rejected}`);
  });

  it('given any value at all (not an object, arrays, maps, dates, boxed values, null prototypes), then both agree', () => {
    const anything = fc.anything({
      withBigInt: true,
      withBoxedValues: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withNullPrototype: true,
      withObjectString: true,
      withSparseArray: true,
      withTypedArray: true,
    });
    holds(
      fc.property(anything, (input) => {
        agreeOnMessage(input);
        agreeOnContent(input);
      }),
      1000,
    );
  });

  it('given a full message with each field, member and nested field in turn absent, undefined, null or a value of any other kind, then both agree', () => {
    const full = {
      id: 'm1',
      type: 'MESSAGE',
      text: 'hi',
      richText: '<p>hi</p>',
      subject: 'Order',
      direction: 'INCOMING',
      channelId: '1000',
      channelAccountId: '240183460',
      conversationsThreadId: '7',
      createdAt: '2026-01-01T00:00:00Z',
      createdBy: 'V-1',
      client: { clientType: 'HUBSPOT', integrationAppId: 2438486 },
      senders: [
        { actorId: 'V-1', name: 'Jane', deliveryIdentifier: { type: 'HS_EMAIL_ADDRESS', value: 'j@x' } },
      ],
      recipients: [{ actorId: 'A-1' }],
      truncationStatus: 'NOT_TRUNCATED',
    };
    // Every path to a field, an array member or a nested object's field.
    const paths: string[][] = [];
    const walk = (value: unknown, path: string[]) => {
      if (path.length > 0) paths.push(path);
      if (typeof value === 'object' && value !== null)
        for (const [key, inner] of Object.entries(value)) walk(inner, [...path, key]);
    };
    walk(full, []);
    const values: unknown[] = [
      ...[ABSENT, undefined, null, '', 'x', 'INCOMING', 'OUTGOING', 0, -0, 1.5, -7, 1e21, 5e-324],
      ...[NaN, Infinity, -Infinity, true, 1n, Symbol('s'), [], [{}], [null], {}, { actorId: 'x' }],
      ...[new Date(0), new String('x'), new Number(1), new Map(), () => 'x'],
    ];
    let accepted = 0;
    for (const path of paths)
      for (const value of values) {
        const input = structuredClone(full) as Record<string, unknown>;
        const parent = path
          .slice(0, -1)
          .reduce<unknown>((at, key) => (at as Record<string, unknown>)[key], input);
        const key = path.at(-1) ?? '';
        if (value === ABSENT) delete (parent as Record<string, unknown>)[key];
        else (parent as Record<string, unknown>)[key] = value;
        try {
          if (agreeOnMessage(input)) accepted++;
        } catch (error) {
          assert.fail(`${path.join('.')} = ${fc.stringify(value)}: ${(error as Error).message}`);
        }
      }
    assert.ok(paths.length > 20 && accepted > 100, `${paths.length} paths, ${accepted} accepted`);
  });

  it('given an object whose fields are inherited or not enumerable, then both read it as zod does', () => {
    const hidden = { type: 'MESSAGE', shown: 1 };
    Object.defineProperty(hidden, 'id', { value: 'm1', enumerable: false });
    Object.defineProperty(hidden, 'notShown', { value: 2, enumerable: false });
    for (const input of [Object.create({ id: 'm1', type: 'MESSAGE', extra: 1 }), hidden])
      assert.ok(agreeOnMessage(input));
  });

  it('given original contents of any shape, then both agree', () => {
    const fields = { text: nullish(fc.string()), richText: nullish(fc.string()) };
    holds(
      fc.property(fc.oneof(looseObject(validOnly, fields), looseObject(sometimesWrong, fields)), (input) => {
        agreeOnContent(input);
        agreeOnContent(viaJson(input));
      }),
      1000,
    );
  });

  it('given each kind of message the fake HubSpot serves, then it is returned as it is, as zod returns it', () => {
    const kinds: MessageKind[] = [
      'customer-chat',
      'customer-email',
      'agent-reply',
      'comment',
      'integration',
      'welcome',
    ];
    for (const kind of kinds) {
      const input = viaJson(message({ kind }));
      assert.ok(agreeOnMessage(input), kind);
      assert.deepEqual(checkHubSpotMessage(input), { success: true, data: input });
    }
    const { originalContent } = truncatedEmail('a long email '.repeat(100));
    assert.deepEqual(checkHubSpotMessageContent(viaJson(originalContent)), {
      success: true,
      data: originalContent,
    });
  });

  it('given numeric ids and no senders or recipients, then the ids become strings and both lists empty', () => {
    const input = {
      id: 'm1',
      type: 'MESSAGE',
      channelId: 1000,
      channelAccountId: 240183460,
      conversationsThreadId: 1e21,
    };
    assert.ok(agreeOnMessage(input));
    assert.deepEqual(checkHubSpotMessage(input), {
      success: true,
      data: {
        ...input,
        channelId: '1000',
        channelAccountId: '240183460',
        conversationsThreadId: '1e+21',
        senders: [],
        recipients: [],
      },
    });
  });

  it('given a wrong field, then it is rejected with the field named', () => {
    const rejects = (input: unknown, message: string) => {
      assert.equal(agreeOnMessage(input), false);
      assert.deepEqual(checkHubSpotMessage(input), { success: false, message });
    };
    const valid = { id: 'm1', type: 'MESSAGE' };
    rejects(
      { ...valid, senders: [{ actorId: 'V-1' }, { actorId: 7 }] },
      'senders[1].actorId: expected string, received number',
    );
    rejects(
      { ...valid, client: { integrationAppId: NaN } },
      'client.integrationAppId: expected finite number, received NaN',
    );
    rejects({ ...valid, senders: null }, 'senders: expected array, received null');
    rejects(
      { ...valid, direction: 'incoming' },
      'direction: expected "INCOMING" or "OUTGOING", received string',
    );
    rejects(
      { ...valid, channelId: Infinity },
      'channelId: expected string or finite number, received number',
    );
    rejects({ type: 'MESSAGE' }, 'id: expected string, received undefined');
    rejects(
      { ...valid, senders: [{ actorId: 'E-1', deliveryIdentifier: { type: 'HS_EMAIL_ADDRESS' } }] },
      'senders[0].deliveryIdentifier.value: expected string, received undefined',
    );
    rejects([valid], 'the answer: expected object, received array');
  });

  it('given a JSON answer with a "__proto__" key, then it is dropped and the prototype kept, as zod does', () => {
    const input = JSON.parse(
      '{"id":"m1","type":"MESSAGE","__proto__":{"polluted":true},"extra":1}',
    ) as unknown;
    assert.ok(agreeOnMessage(input));
    const checked = checkHubSpotMessage(input);
    assert.ok(checked.success);
    assert.equal(Object.getPrototypeOf(checked.data), Object.prototype);
    assert.equal(Object.hasOwn(checked.data, '__proto__'), false);
    assert.equal(checked.data['extra'], 1);
  });
});
