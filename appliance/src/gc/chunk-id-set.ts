/**
 * The chunks that live indexes name, by storage key (the chunk id, or its HMAC on an encrypted appliance: uniform
 * either way), kept as their first 64 bits in an open-addressing hash table outside
 * the JavaScript heap: 11 to 22 bytes per id instead of ~130 for a Set of hex strings, which matters with
 * tens of millions of distinct chunks. Two ids sharing 64 bits only make a garbage chunk look referenced —
 * it is kept, never the reverse — and SHA-256 makes that practically never happen.
 */
export class ChunkIdSet {
  /** Pairs of (high, low) 32-bit words; (0, 0) marks an empty slot. */
  #slots: Uint32Array;
  #mask: number;
  #size = 0;
  /** The one prefix that cannot be stored in a slot, because it reads as empty. */
  #hasZero = false;

  constructor(expected = 1 << 16) {
    let capacity = 1 << 10;
    while (capacity < expected * 2) capacity *= 2;
    this.#slots = new Uint32Array(capacity * 2);
    this.#mask = capacity - 1;
  }

  get size(): number {
    return this.#size + (this.#hasZero ? 1 : 0);
  }

  /** Adds the 32-byte key stored at `at` in `buf` (without making a string). */
  addAt(buf: Buffer, at: number): void {
    this.#add(buf.readUInt32BE(at), buf.readUInt32BE(at + 4));
  }

  add(hex: string): void {
    this.#add(parseInt(hex.slice(0, 8), 16), parseInt(hex.slice(8, 16), 16));
  }

  has(hex: string): boolean {
    const hi = parseInt(hex.slice(0, 8), 16);
    const lo = parseInt(hex.slice(8, 16), 16);
    if (hi === 0 && lo === 0) return this.#hasZero;
    // The low word of a SHA-256 prefix is uniform: it is its own hash.
    for (let i = lo & this.#mask; ; i = (i + 1) & this.#mask) {
      const h = this.#slots[2 * i]!;
      const l = this.#slots[2 * i + 1]!;
      if (h === 0 && l === 0) return false;
      if (h === hi && l === lo) return true;
    }
  }

  #add(hi: number, lo: number): void {
    if (hi === 0 && lo === 0) {
      this.#hasZero = true;
      return;
    }
    if (this.#insert(this.#slots, this.#mask, hi, lo)) this.#size++;
    // Linear probing stays short below three quarters full.
    if (this.#size * 4 > (this.#mask + 1) * 3) this.#grow();
  }

  #insert(slots: Uint32Array, mask: number, hi: number, lo: number): boolean {
    for (let i = lo & mask; ; i = (i + 1) & mask) {
      const h = slots[2 * i]!;
      const l = slots[2 * i + 1]!;
      if (h === hi && l === lo) return false;
      if (h === 0 && l === 0) {
        slots[2 * i] = hi;
        slots[2 * i + 1] = lo;
        return true;
      }
    }
  }

  #grow(): void {
    const old = this.#slots;
    const capacity = (this.#mask + 1) * 2;
    const slots = new Uint32Array(capacity * 2);
    const mask = capacity - 1;
    for (let i = 0; i < old.length; i += 2) {
      const hi = old[i]!;
      const lo = old[i + 1]!;
      if (hi !== 0 || lo !== 0) this.#insert(slots, mask, hi, lo);
    }
    this.#slots = slots;
    this.#mask = mask;
  }
}
