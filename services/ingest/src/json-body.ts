/**
 * JSON request bodies, read defensively: strict UTF-8, and a nesting bound checked by a linear
 * scan BEFORE JSON.parse (a body of 100,000 `[` is 200 kB, well under the size limit, and deep
 * enough to overflow the stack of whatever walks the parsed value next).
 */
export const MAX_JSON_DEPTH = 64;

export type JsonBody =
  | {
      readonly ok: true;
      readonly value: unknown;
      /**
       * When the body is an array: each element's UTF-8 bytes exactly as sent, in order (so an
       * event is kept byte for byte, unknown fields and number spellings included). Views of the
       * body where it is ASCII (the common case: no copy).
       */
      readonly elements: readonly Buffer[] | undefined;
    }
  | { readonly ok: false; readonly detail: string };

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;

/** The only whitespace JSON allows between tokens: space, tab, line feed, carriage return. */
const isJsonWhitespace = (char: number): boolean =>
  char === 0x20 || char === 0x09 || char === 0x0a || char === 0x0d;

/** The index of the quote closing the string opened at `open`; text.length when it is not closed. */
const closingQuoteOf = (text: string, open: number): number => {
  for (let quote = text.indexOf('"', open + 1); quote >= 0; quote = text.indexOf('"', quote + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote;
  }
  return text.length;
};

/**
 * One pass over the text: the deepest nesting (outside strings), and the spans of the top-level
 * array's elements. Only meaningful for text JSON.parse accepts, which is checked after.
 */
const scan = (text: string, maxDepth: number): { tooDeep: boolean; spans: [number, number][] } => {
  const spans: [number, number][] = [];
  let depth = 0;
  let elementStart = -1;
  for (let index = 0; index < text.length; index++) {
    const char = text.charCodeAt(index);
    if (char === QUOTE) {
      // Jump to the closing quote (one not escaped by an odd run of backslashes): most of a
      // webhook body is inside strings, and indexOf is much faster than a loop over each char.
      index = closingQuoteOf(text, index);
      continue;
    }
    if (char === OPEN_ARRAY || char === OPEN_OBJECT) {
      depth++;
      if (depth > maxDepth) return { tooDeep: true, spans };
      if (depth === 1) elementStart = index + 1;
    } else if (char === CLOSE_ARRAY || char === CLOSE_OBJECT) {
      depth--;
      if (depth === 0 && elementStart >= 0) spans.push([elementStart, index]);
    } else if (char === COMMA && depth === 1) {
      spans.push([elementStart, index]);
      elementStart = index + 1;
    }
  }
  return { tooDeep: false, spans };
};

export const parseJsonBody = (raw: Buffer, maxDepth = MAX_JSON_DEPTH): JsonBody => {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    return { ok: false, detail: 'body is not valid UTF-8' };
  }
  const { tooDeep, spans } = scan(text, maxDepth);
  if (tooDeep) return { ok: false, detail: `JSON nested deeper than ${maxDepth} levels` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, detail: 'body is not JSON' };
  }
  if (!Array.isArray(value)) return { ok: true, value, elements: undefined };
  // An ASCII body (no BOM either: it would be 3 bytes and no char) has its chars at its bytes'
  // offsets, so an element is a view of the body; otherwise its text is encoded again (a strict
  // decode of valid UTF-8 encodes back to the same bytes).
  const ascii = text.length === raw.length;
  const elements: Buffer[] = [];
  for (const [spanStart, spanEnd] of spans) {
    let start = spanStart;
    let end = spanEnd;
    while (start < end && isJsonWhitespace(text.charCodeAt(start))) start++;
    while (end > start && isJsonWhitespace(text.charCodeAt(end - 1))) end--;
    if (start === end) continue; // `[]`: no element
    elements.push(ascii ? raw.subarray(start, end) : Buffer.from(text.slice(start, end)));
  }
  // Defensive: should the scan and JSON.parse ever disagree, fall back to re-serialising.
  return {
    ok: true,
    value,
    elements:
      elements.length === value.length ? elements : value.map((item) => Buffer.from(JSON.stringify(item))),
  };
};
