import type { HubSpotMessage, HubSpotMessageContent } from './messages.ts';

/**
 * Hand-written checks of the HubSpot answers the processor reads for every customer message
 * (the re-fetched message, and the original content of a truncated one). zod's safeParse cost
 * ~4 % of the processor's CPU per re-fetched message; these checks accept exactly what
 * `HubSpotMessage.safeParse` / `HubSpotMessageContent.safeParse` (lib/hubspot/messages.ts)
 * accept and return the same data, keys in the same order, which
 * test/unit/hubspot-message-check.unit.spec.ts holds them to. The zod schemas stay the types'
 * source and the reference: a change to one of them needs the same change here, or that test
 * fails.
 *
 * What zod (v4) does and these checks copy:
 * - an object is any non-null, non-array `typeof 'object'` value; a declared key is read as
 *   `input[key]` and is present when `key in input` (inherited keys count);
 * - a looseObject's output has the declared keys first, in the schema's order, then every other
 *   key `for…in` yields (own and inherited enumerable ones, undefined values included) except
 *   `__proto__`;
 * - `.nullish()`: an absent key stays absent, a present undefined or null is kept as it is;
 * - `.default([])`: [] for undefined (absent or present), null is rejected;
 * - `z.number()` rejects NaN and ±Infinity; `z.union([z.string(), z.number()]).transform(String)`
 *   gives `String(value)` (so -0 gives '0', 1e21 gives '1e+21').
 *
 * The fields are read and written by name, not through a table of keys: keyed reads and writes
 * whose key changes from call to call (and a Set of the declared keys) cost about as much as
 * zod itself.
 */
export type Checked<T> =
  { readonly success: true; readonly data: T } | { readonly success: false; readonly message: string };

type Loose = Record<string, unknown>;

const received = (value: unknown): string =>
  value === null
    ? 'null'
    : Array.isArray(value)
      ? 'array'
      : typeof value === 'number' && Number.isNaN(value)
        ? 'NaN'
        : typeof value;

/**
 * A wrong field, thrown where it is found; the enclosing fields and array positions are added
 * to its path on the way out, so a valid answer builds no path at all.
 */
class Mismatch extends Error {
  private readonly path: (string | number)[];
  private readonly expected: string;
  private readonly value: unknown;
  constructor(field: string | undefined, expected: string, value: unknown) {
    super('HubSpot answer mismatch');
    this.path = field === undefined ? [] : [field];
    this.expected = expected;
    this.value = value;
  }
  static within(error: unknown, at: string | number): unknown {
    if (error instanceof Mismatch) error.path.unshift(at);
    return error;
  }
  describe(): string {
    const path = this.path.map((at) => (typeof at === 'number' ? `[${at}]` : `.${at}`)).join('');
    return `${path === '' ? 'the answer' : path.replace(/^\./, '')}: expected ${this.expected}, received ${received(this.value)}`;
  }
}

const object = (value: unknown, field?: string): Loose => {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Mismatch(field, 'object', value);
  return value as Loose;
};

const string = (value: unknown, field: string): string => {
  if (typeof value !== 'string') throw new Mismatch(field, 'string', value);
  return value;
};

const finiteNumber = (value: unknown, field: string): number => {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Mismatch(field, 'finite number', value);
  return value;
};

/** `z.union([z.string(), z.number()]).transform(String)`: HubSpot sends some ids as numbers. */
const id = (value: unknown, field: string): string => {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  throw new Mismatch(field, 'string or finite number', value);
};

const direction = (value: unknown, field: string): string => {
  if (value !== 'INCOMING' && value !== 'OUTGOING')
    throw new Mismatch(field, '"INCOMING" or "OUTGOING"', value);
  return value;
};

/** `.default([])` of an array: each member checked by `item`, whose mismatch says which member. */
const arrayOrEmpty = (value: unknown, field: string, item: (value: unknown) => Loose): Loose[] => {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Mismatch(field, 'array', value);
  const items = new Array<Loose>(value.length);
  for (let i = 0; i < value.length; i++) {
    try {
      items[i] = item(value[i]);
    } catch (error) {
      throw Mismatch.within(Mismatch.within(error, i), field);
    }
  }
  return items;
};

/** A nested looseObject; its mismatch says which field holds it. */
const nested = (value: unknown, field: string, check: (value: unknown) => Loose): Loose => {
  try {
    return check(value);
  } catch (error) {
    throw Mismatch.within(error, field);
  }
};

/** A looseObject's other keys, after its declared ones (`declared` tells them apart). */
const copyOthers = (input: Loose, out: Loose, declared: (key: string) => boolean): void => {
  for (const key in input) {
    if (declared(key) || key === '__proto__') continue;
    out[key] = input[key];
  }
};

// Each `.nullish()` field below is written when its value is not undefined or its key is `in`
// the input (zod keeps a present undefined); null and undefined as they are, anything else checked.

const clientKey = (key: string): boolean => key === 'clientType' || key === 'integrationAppId';
const client = (value: unknown): Loose => {
  const input = object(value);
  const out: Loose = {};
  const { clientType, integrationAppId } = input;
  if (clientType !== undefined || 'clientType' in input)
    out.clientType = clientType == null ? clientType : string(clientType, 'clientType');
  if (integrationAppId !== undefined || 'integrationAppId' in input)
    out.integrationAppId =
      integrationAppId == null ? integrationAppId : finiteNumber(integrationAppId, 'integrationAppId');
  copyOthers(input, out, clientKey);
  return out;
};

const deliveryIdentifierKey = (key: string): boolean => key === 'type' || key === 'value';
const deliveryIdentifier = (value: unknown): Loose => {
  const input = object(value);
  const out: Loose = {};
  out.type = string(input.type, 'type');
  out.value = string(input.value, 'value');
  copyOthers(input, out, deliveryIdentifierKey);
  return out;
};

const senderKey = (key: string): boolean =>
  key === 'actorId' || key === 'name' || key === 'deliveryIdentifier';
const sender = (value: unknown): Loose => {
  const input = object(value);
  const out: Loose = {};
  out.actorId = string(input.actorId, 'actorId');
  const { name, deliveryIdentifier: identifier } = input;
  if (name !== undefined || 'name' in input) out.name = name == null ? name : string(name, 'name');
  if (identifier !== undefined || 'deliveryIdentifier' in input)
    out.deliveryIdentifier =
      identifier == null ? identifier : nested(identifier, 'deliveryIdentifier', deliveryIdentifier);
  copyOthers(input, out, senderKey);
  return out;
};

const recipientKey = (key: string): boolean => key === 'actorId';
const recipient = (value: unknown): Loose => {
  const input = object(value);
  const out: Loose = {};
  const { actorId } = input;
  if (actorId !== undefined || 'actorId' in input)
    out.actorId = actorId == null ? actorId : string(actorId, 'actorId');
  copyOthers(input, out, recipientKey);
  return out;
};

const messageKey = (key: string): boolean => {
  switch (key) {
    case 'id':
    case 'type':
    case 'text':
    case 'richText':
    case 'subject':
    case 'direction':
    case 'channelId':
    case 'channelAccountId':
    case 'conversationsThreadId':
    case 'createdAt':
    case 'createdBy':
    case 'client':
    case 'senders':
    case 'recipients':
    case 'truncationStatus':
      return true;
    default:
      return false;
  }
};
const message = (value: unknown): Loose => {
  const input = object(value);
  const out: Loose = {};
  out.id = string(input.id, 'id');
  out.type = string(input.type, 'type');
  const { text, richText, subject } = input;
  if (text !== undefined || 'text' in input) out.text = text == null ? text : string(text, 'text');
  if (richText !== undefined || 'richText' in input)
    out.richText = richText == null ? richText : string(richText, 'richText');
  if (subject !== undefined || 'subject' in input)
    out.subject = subject == null ? subject : string(subject, 'subject');
  const { direction: towards, channelId, channelAccountId, conversationsThreadId } = input;
  if (towards !== undefined || 'direction' in input)
    out.direction = towards == null ? towards : direction(towards, 'direction');
  if (channelId !== undefined || 'channelId' in input)
    out.channelId = channelId == null ? channelId : id(channelId, 'channelId');
  if (channelAccountId !== undefined || 'channelAccountId' in input)
    out.channelAccountId =
      channelAccountId == null ? channelAccountId : id(channelAccountId, 'channelAccountId');
  if (conversationsThreadId !== undefined || 'conversationsThreadId' in input)
    out.conversationsThreadId =
      conversationsThreadId == null
        ? conversationsThreadId
        : id(conversationsThreadId, 'conversationsThreadId');
  const { createdAt, createdBy, client: by } = input;
  if (createdAt !== undefined || 'createdAt' in input)
    out.createdAt = createdAt == null ? createdAt : string(createdAt, 'createdAt');
  if (createdBy !== undefined || 'createdBy' in input)
    out.createdBy = createdBy == null ? createdBy : string(createdBy, 'createdBy');
  if (by !== undefined || 'client' in input) out.client = by == null ? by : nested(by, 'client', client);
  out.senders = arrayOrEmpty(input.senders, 'senders', sender);
  out.recipients = arrayOrEmpty(input.recipients, 'recipients', recipient);
  const { truncationStatus } = input;
  if (truncationStatus !== undefined || 'truncationStatus' in input)
    out.truncationStatus =
      truncationStatus == null ? truncationStatus : string(truncationStatus, 'truncationStatus');
  copyOthers(input, out, messageKey);
  return out;
};

const contentKey = (key: string): boolean => key === 'text' || key === 'richText';
const content = (value: unknown): Loose => {
  const input = object(value);
  const out: Loose = {};
  const { text, richText } = input;
  if (text !== undefined || 'text' in input) out.text = text == null ? text : string(text, 'text');
  if (richText !== undefined || 'richText' in input)
    out.richText = richText == null ? richText : string(richText, 'richText');
  copyOthers(input, out, contentKey);
  return out;
};

const checkWith =
  <T>(check: (value: unknown) => Loose) =>
  (json: unknown): Checked<T> => {
    try {
      // The cast is what the property test proves: the value has the shape zod infers.
      return { success: true, data: check(json) as T };
    } catch (error) {
      if (error instanceof Mismatch) return { success: false, message: error.describe() };
      throw error;
    }
  };

/** `HubSpotMessage.safeParse`, by hand: GET …/threads/{threadId}/messages/{messageId}. */
export const checkHubSpotMessage: (json: unknown) => Checked<HubSpotMessage> =
  checkWith<HubSpotMessage>(message);

/** `HubSpotMessageContent.safeParse`, by hand: GET …/messages/{messageId}/original-content. */
export const checkHubSpotMessageContent: (json: unknown) => Checked<HubSpotMessageContent> =
  checkWith<HubSpotMessageContent>(content);
