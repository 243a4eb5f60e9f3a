/**
 * Redis Cluster's key → slot mapping (https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#key-distribution-model):
 * CRC16 (XMODEM) of the key, or of its hash tag (the text between the first `{` and the next
 * `}`, when not empty), modulo 16384. Commands and scripts that touch several keys run on a
 * Cluster only when all their keys have the same slot.
 */
export const CLUSTER_SLOTS = 16384;

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte += 1) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit += 1)
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    table[byte] = crc;
  }
  return table;
})();

const crc16 = (bytes: Uint8Array): number => {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0);
  return crc;
};

/** The part of `key` Redis hashes: its hash tag when it has a non-empty one, else the whole key. */
const hashedPart = (key: string): string => {
  const open = key.indexOf('{');
  if (open === -1) return key;
  const close = key.indexOf('}', open + 1);
  return close === -1 || close === open + 1 ? key : key.slice(open + 1, close);
};

export const keySlot = (key: string): number => crc16(Buffer.from(hashedPart(key), 'utf8')) % CLUSTER_SLOTS;

/**
 * `{text}`: a hash tag, so every key that holds it lands in the same slot. Braces inside `text`
 * would end the tag early; they are replaced.
 */
export const hashTag = (text: string): string => `{${text.replace(/[{}]/g, '_')}}`;

/** Positions of `keys` grouped by slot, in first-seen order, each group in the keys' order. */
export const groupBySlot = (keys: readonly string[]): number[][] => {
  const groups = new Map<number, number[]>();
  keys.forEach((key, index) => {
    const slot = keySlot(key);
    const group = groups.get(slot);
    if (group) group.push(index);
    else groups.set(slot, [index]);
  });
  return [...groups.values()];
};
