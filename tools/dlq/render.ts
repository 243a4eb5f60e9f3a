import { deadLetterId, type ArchivedDeadLetter, type ReplaySummary } from '../../lib/dead-letters/index.ts';

/** A letter's id: the `dead-letter-id` its writer gave it, derived from where its source record sits. */
export const idOf = ({ letter }: ArchivedDeadLetter): string =>
  deadLetterId(letter.service, letter.sourceTopic, letter.partition, letter.offset);

/** What `list` prints as id=: enough of the id to tell letters apart, and `show` takes it. */
export const shortId = (letter: ArchivedDeadLetter): string => idOf(letter).slice(0, 12);

export const oneLine = (text: string, max: number): string => {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

export const formatLetter = (archived: ArchivedDeadLetter): string => {
  const { letter } = archived;
  return [
    new Date(letter.failedAt).toISOString(),
    letter.service,
    letter.reason,
    `org=${letter.orgId ?? '-'}`,
    letter.eventType ?? '-',
    `event=${letter.eventId ?? '-'}`,
    `from=${letter.sourceTopic}/${letter.partition}@${letter.offset}`,
    `id=${shortId(archived)}`,
    oneLine(letter.error, 120),
  ].join('  ');
};

export const formatSummary = (letters: readonly ArchivedDeadLetter[]): string => {
  if (letters.length === 0) return 'no dead letters match';
  const byReason = new Map<string, number>();
  for (const { letter } of letters) byReason.set(letter.reason, (byReason.get(letter.reason) ?? 0) + 1);
  const counts = [...byReason]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([reason, count]) => `${reason} ${count}`);
  return `${letters.length} dead letter${letters.length === 1 ? '' : 's'}: ${counts.join(', ')}`;
};

export const formatReplaySummary = (summary: ReplaySummary): string =>
  `replayed ${summary.replayed}, already replayed ${summary.alreadyReplayed}, failed ${summary.failed}`;

/** A letter as data (--json): ids and positions as text, times as ISO dates, bytes measured. */
export const letterAsJson = (archived: ArchivedDeadLetter): Record<string, unknown> => {
  const { letter } = archived;
  return {
    id: idOf(archived),
    deadLetter: { topic: archived.topic, partition: archived.partition, offset: archived.offset },
    failedAt: new Date(letter.failedAt).toISOString(),
    service: letter.service,
    reason: letter.reason,
    error: letter.error,
    attempts: letter.attempts,
    orgId: letter.orgId,
    eventType: letter.eventType,
    eventId: letter.eventId,
    source: { topic: letter.sourceTopic, partition: letter.partition, offset: letter.offset },
    key: letter.key?.toString('utf8') ?? null,
    headers: letter.headers,
    valueBytes: letter.value?.length ?? null,
  };
};

export const summaryAsJson = (letters: readonly ArchivedDeadLetter[]): Record<string, number> => {
  const byReason: Record<string, number> = {};
  for (const { letter } of letters) byReason[letter.reason] = (byReason[letter.reason] ?? 0) + 1;
  return byReason;
};

/** Bytes as base64, Dates as ISO text, bigints as text: JSON.stringify's replacer. */
export const jsonSafe = (_key: string, value: unknown): unknown => {
  if (typeof value === 'bigint') return value.toString();
  if (value && typeof value === 'object' && (value as { type?: unknown }).type === 'Buffer')
    return { base64: Buffer.from((value as { data: number[] }).data).toString('base64') };
  return value;
};

export type DecodedPayload =
  | { readonly kind: 'absent'; readonly detail: string }
  | { readonly kind: 'avro'; readonly recordName: string; readonly record: Record<string, unknown> }
  | {
      readonly kind: 'undecodable';
      readonly error: string;
      readonly text: string | null;
      readonly base64: string;
    };

/** `show`, for a person: one field a line, then the decoded original record. */
export const formatLetterDetail = (archived: ArchivedDeadLetter, payload: DecodedPayload): string => {
  const { letter } = archived;
  const rows: [string, string][] = [
    ['id', idOf(archived)],
    ['stored at', `${archived.topic}/${archived.partition}@${archived.offset}`],
    ['failed at', new Date(letter.failedAt).toISOString()],
    ['service', letter.service],
    ['reason', letter.reason],
    ['attempts', String(letter.attempts)],
    ['organisation', letter.orgId ?? '-'],
    ['event', `${letter.eventType ?? '-'} ${letter.eventId ?? ''}`.trim()],
    ['source', `${letter.sourceTopic}/${letter.partition}@${letter.offset}`],
    ['key', letter.key?.toString('utf8') ?? '-'],
    [
      'headers',
      Object.entries(letter.headers ?? {})
        .map(([name, value]) => `${name}=${value}`)
        .join(', ') || '-',
    ],
    ['error', letter.error],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  const head = rows.map(([name, value]) => `${name.padEnd(width)}  ${value}`).join('\n');
  const body =
    payload.kind === 'avro'
      ? `payload (${payload.recordName}):\n${JSON.stringify(payload.record, jsonSafe, 2)}`
      : payload.kind === 'absent'
        ? `payload: none: ${payload.detail}`
        : `payload: not decodable (${payload.error}); ${payload.text === null ? `base64: ${payload.base64}` : `as text: ${payload.text}`}`;
  return `${head}\n${body}`;
};

/** One value as a line of JSON (--json). */
export const json = (value: unknown): string => `${JSON.stringify(value, jsonSafe)}\n`;
