import { z } from 'zod';
import { JsonTable, type JsonTableOptions } from './kafka/json-table.ts';
import type { RecordWriter } from './kafka/record-writer.ts';

/**
 * An organisation's reconcile state, on a compacted topic (one record per organisation): any
 * processor replica can run the next reconcile from where the last one, on any replica, got to.
 * The processor's reconciler writes it; the console shows it.
 */
export const ReconcileWatermark = z.object({
  /** Epoch ms: every message created at or before it (and after the first run's start) was checked. */
  checkedThrough: z.number(),
  /** When the last run that completed started. */
  lastRunAt: z.number(),
  /** Gaps the last completed run found (messages never handled, written to the raw topic). */
  gapsFound: z.number().int().min(0),
  /** Gaps found by every run so far. */
  gapsTotal: z.number().int().min(0),
  /** createdAt of the oldest gap the last completed run found; null when it found none. */
  oldestGapAt: z.number().nullable(),
  /**
   * Completed runs in a row, up to the last, that found gaps; 0 when the last found none. Two or
   * more means webhooks keep going missing, not one lost delivery (ProcessorReconcileKeepsFindingGaps).
   */
  runsWithGapsInARow: z.number().int().min(0).default(0),
});
export type ReconcileWatermark = z.infer<typeof ReconcileWatermark>;

export class ReconcileWatermarks extends JsonTable<ReconcileWatermark> {
  constructor(options: JsonTableOptions) {
    super(ReconcileWatermark, options);
  }

  get(orgId: string): ReconcileWatermark | undefined {
    return this.table.get(orgId);
  }

  /** Every organisation's watermark (organisations never reconciled have none). */
  entries(): [orgId: string, watermark: ReconcileWatermark][] {
    return [...this.table.entries()];
  }

  /** Durable (acks=all) before it returns, and visible here at once. */
  async record(writer: Pick<RecordWriter, 'write'>, orgId: string, watermark: ReconcileWatermark) {
    await this.writeThrough(writer, [{ key: orgId, value: watermark }], `reconcile watermark of ${orgId}`);
  }
}
