import assert from 'node:assert/strict';

/**
 * The text of each cell of an organisation's row on the console's organisations page, by the
 * cell's class (`<td class="gaps-found">`), tags removed and white space folded.
 */
export const orgRowCells = (page: string, orgId: string): Record<string, string> => {
  const row = new RegExp(`<tr data-org="${orgId}">([\\s\\S]*?)</tr>`).exec(page)?.[1];
  assert.ok(row, `a row for ${orgId}`);
  const cells: Record<string, string> = {};
  for (const [, name, inner] of row.matchAll(/<td class="([\w-]+)">([\s\S]*?)<\/td>/g))
    cells[name ?? ''] = (inner ?? '')
      .replace(/<[^>]+>/g, '')
      .replace(/\s+/g, ' ')
      .trim();
  return cells;
};

/** A row's reconcile cells: last run, gaps of the last run, gaps of every run, oldest gap. */
export const reconcileCells = (page: string, orgId: string): (string | undefined)[] => {
  const cells = orgRowCells(page, orgId);
  return [cells['last-reconcile'], cells['gaps-found'], cells['gaps-total'], cells['oldest-gap']];
};
