import {
  API_PREFIX,
  BlockIndexReader,
  decodeIndexHeader,
  FerryError,
  INDEX_ENTRY_BYTES,
  INDEX_HEADER_BYTES,
  IndexFormatError,
  xxh64,
  type ApplianceClient,
  type IndexEntry,
  type IndexHeader,
} from '@ferry/protocol';

/** Entries per range request: 768 KiB, so the agent holds well under 1 MiB of a previous index at a time. */
export const PREVIOUS_INDEX_RANGE_ENTRIES = 16_384;

/**
 * The previous point's index of one disk, read as an incremental cycle advances instead of held whole (48 bytes
 * per block: 192 MiB per TiB at 256 KiB blocks, against an agent budget of 100 MB RSS).
 *
 * It is fetched in ranges (`GET …/index?from=&to=`, a few hundred KiB each), one range when the cycle reaches
 * it, not as one long response paused between reads. A cycle on a throttled disk runs for hours: a response held
 * paused that long would trip the agent's own idle timeout (FERRY_IO_TIMEOUT_SECONDS, which rightly takes silence
 * for a dead link), keep a connection and the whole index in the appliance's memory for the cycle's length, and
 * die with any outage, proxy or SSH port forward (passive mode) in between, taking the cycle with it. Each range
 * request is short and independent, so none of that applies, and the HTTP client's timeouts and error mapping
 * stay what they are for every other request.
 *
 * Checked before use. The sealed entries checksum (xxh64 over all entries) can only be checked once every entry
 * has arrived, but the cycle uses an entry as soon as it reaches its block, and an entry used is acknowledged by
 * the appliance (which accepts blocks only in order, so they cannot be sent again in the same cycle). So the
 * index is read twice: first straight through, range by range, remembering each range's xxh64 and checking the
 * whole against the header's `entriesXxh64` (nothing held); then again as the cycle advances, each range checked
 * against the xxh64 remembered for it before any of its entries is handed out. A damaged index (on the way, or
 * served wrongly) thus fails with PREVIOUS_INDEX_DAMAGED before the cycle has used a single wrong entry, and
 * runCycle carries on without trusting the previous point. The cost is a second download of the index (48 MiB
 * per TiB at 1 MiB blocks): small beside reading the disk, and nothing beside the hours of the cycle.
 */
export class PreviousIndex {
  readonly #reader: BlockIndexReader;

  private constructor(
    readonly pointId: number,
    readonly diskId: number,
    reader: BlockIndexReader,
  ) {
    this.#reader = reader;
  }

  static async open(client: ApplianceClient, pointId: number, diskId: number, rangeEntries = PREVIOUS_INDEX_RANGE_ENTRIES): Promise<PreviousIndex> {
    const path = `${API_PREFIX}/points/${pointId}/disks/${diskId}/index`;
    const damaged = (err: unknown): unknown => (err instanceof IndexFormatError ? damage(pointId, diskId, err.message) : err);
    // First pass: every range, hashed; the reader checks the whole against entriesXxh64.
    const checked: RangeChecks = { header: null, hashes: [] };
    const first = await BlockIndexReader.open(ranges(client, path, rangeEntries, checked, 'record')).catch((err: unknown) => {
      throw damaged(err);
    });
    try {
      if (!first.header.sealed) throw damage(pointId, diskId, 'it is not sealed, so it belongs to no point');
      await first.finish().catch((err: unknown) => {
        throw damaged(err);
      });
    } finally {
      await first.close();
    }
    // Second pass, as the cycle advances: each range must be the one checked above.
    const reader = await BlockIndexReader.open(ranges(client, path, rangeEntries, checked, 'verify')).catch((err: unknown) => {
      throw damaged(err);
    });
    return new PreviousIndex(pointId, diskId, reader);
  }

  get header(): IndexHeader {
    return this.#reader.header;
  }

  /** Entry `n` of the previous point (n in increasing order from call to call), or null past its last block. */
  async entry(n: number): Promise<IndexEntry | null> {
    if (n >= this.#reader.header.blockCount) return null;
    try {
      return await this.#reader.entry(n);
    } catch (err) {
      throw err instanceof IndexFormatError ? damage(this.pointId, this.diskId, err.message) : err;
    }
  }

  /** Reads to the end (when the disk has fewer blocks than the previous point) and checks what is left. */
  async finish(): Promise<void> {
    try {
      await this.#reader.finish();
    } catch (err) {
      throw err instanceof IndexFormatError ? damage(this.pointId, this.diskId, err.message) : err;
    }
  }

  async close(): Promise<void> {
    await this.#reader.close();
  }
}

function damage(pointId: number, diskId: number, why: string): FerryError {
  return new FerryError(
    'PREVIOUS_INDEX_DAMAGED',
    `the index of the previous point ${pointId} (disk ${diskId}) arrived damaged: ${why}. No block was compared against the damaged part; ` +
      'the cycle continues without trusting the previous point',
  );
}

/** What the first pass learnt, for the second to check against. */
interface RangeChecks {
  header: Buffer | null;
  /** xxh64 of the entries of each reply, in order. */
  hashes: bigint[];
}

/**
 * The index file as one byte stream, fetched a range at a time when the reader asks for more. The first reply
 * holds entry 0 only (it brings the header, and with it the block count); then `rangeEntries` at a time.
 */
async function* ranges(client: ApplianceClient, path: string, rangeEntries: number, checks: RangeChecks, mode: 'record' | 'verify'): AsyncGenerator<Buffer> {
  let blockCount = 1;
  for (let i = 0, from = 0; from < blockCount; i++) {
    const to = i === 0 ? 1 : Math.min(blockCount, from + rangeEntries);
    const reply = await client.bytes(`${path}?from=${from}&to=${to}`);
    if (reply.length !== INDEX_HEADER_BYTES + (to - from) * INDEX_ENTRY_BYTES) {
      throw new IndexFormatError(`the reply for entries [${from}, ${to}) has ${reply.length} bytes, not ${INDEX_HEADER_BYTES + (to - from) * INDEX_ENTRY_BYTES}`);
    }
    const head = reply.subarray(0, INDEX_HEADER_BYTES);
    const entries = reply.subarray(INDEX_HEADER_BYTES);
    const hash = xxh64(entries);
    if (mode === 'record') {
      if (i === 0) checks.header = Buffer.from(head);
      else if (!head.equals(checks.header!)) throw new IndexFormatError(`the header sent with entries [${from}, ${to}) differs from the first one`);
      checks.hashes.push(hash);
    } else if (!head.equals(checks.header!) || checks.hashes[i] !== hash) {
      throw new IndexFormatError(`entries [${from}, ${to}) differ from the copy checked at the start of the disk`);
    }
    if (i === 0) {
      blockCount = decodeIndexHeader(head).blockCount;
      yield reply;
    } else {
      yield entries;
    }
    from = to;
  }
}
