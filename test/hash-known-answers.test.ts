// Known-answer vectors for XXH64, XXH3-64 and XXH3-128 (the reference's published sanity
// values: lengths across every class, with and without seeds, over the reference's
// deterministic test buffer), SHA-256 of "abc", and the STABILITY pin: one digest over all
// known-answer and per-block digests. If STABILITY changes, on-disk digest compatibility broke.

import t, { type Test } from "tap";
import { createHasher, hashBlocks, hashBytes, toHex, type HashAlgorithm } from "../dist/index.js";

const PRIME32 = 2654435761n;
const PRIME64 = 11400714785074694797n;

/** The reference sanity buffer: byte i is the top byte of PRIME32 * PRIME64^i (mod 2^64). */
function sanityBuffer(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let generator = PRIME32;
  for (let i = 0; i < length; i++) {
    bytes[i] = Number(generator >> 56n);
    generator = (generator * PRIME64) & 0xffffffffffffffffn;
  }
  return bytes;
}

type Vector = [length: number, seed: bigint, low: string, high?: string];

const XXH64: Vector[] = [
  [0, 0n, "EF46DB3751D8E999"], [0, PRIME32, "AC75FDA2929B17EF"], [1, 0n, "E934A84ADB052768"],
  [1, PRIME32, "5014607643A9B4C3"], [4, 0n, "9136A0DCA57457EE"], [14, 0n, "8282DCC4994E35C8"],
  [14, PRIME32, "C3BD6BF63DEB6DF0"], [222, 0n, "B641AE8CB691C174"], [222, PRIME32, "20CB8AB7AE10C14A"],
];

const XXH3_64: Vector[] = [
  [0, 0n, "2D06800538D394C2"], [0, PRIME64, "A8A6B918B2F0364A"], [1, 0n, "C44BDFF4074EECDB"],
  [1, PRIME64, "032BE332DD766EF8"], [6, 0n, "27B56A84CD2D7325"], [6, PRIME64, "84589C116AB59AB9"],
  [12, 0n, "A713DAF0DFBB77E7"], [12, PRIME64, "E7303E1B2336DE0E"], [24, 0n, "A3FE70BF9D3510EB"],
  [24, PRIME64, "850E80FC35BDD690"], [48, 0n, "397DA259ECBA1F11"], [48, PRIME64, "ADC2CBAA44ACC616"],
  [80, 0n, "BCDEFBBB2C47C90A"], [80, PRIME64, "C6DD0CB699532E73"], [195, 0n, "CD94217EE362EC3A"],
  [195, PRIME64, "BA68003D370CB3D9"], [403, 0n, "CDEB804D65C6DEA4"], [403, PRIME64, "6259F6ECFD6443FD"],
  [512, 0n, "617E49599013CB6B"], [512, PRIME64, "3CE457DE14C27708"], [2048, 0n, "DD59E2C3A5F038E0"],
  [2048, PRIME64, "66F81670669ABABC"], [2240, 0n, "6E73A90539CF2948"], [2240, PRIME64, "757BA8487D1B5247"],
  [2367, 0n, "CB37AEB9E5D361ED"], [2367, PRIME64, "D2DB3415B942B42A"],
];

const XXH3_128: Vector[] = [
  [0, 0n, "6001C324468D497F", "99AA06D3014798D8"], [0, PRIME32, "5444F7869C671AB0", "92220AE55E14AB50"],
  [1, 0n, "C44BDFF4074EECDB", "A6CD5E9392000F6A"], [1, PRIME32, "B53D5557E7F76F8D", "89B99554BA22467C"],
  [6, 0n, "3E7039BDDA43CFC6", "082AFE0B8162D12A"], [6, PRIME32, "269D8F70BE98856E", "5A865B5389ABD2B1"],
  [12, 0n, "061A192713F69AD9", "6E3EFD8FC7802B18"], [12, PRIME32, "9BE9F9A67F3C7DFB", "D7E09D518A3405D3"],
  [24, 0n, "1E7044D28B1B901D", "0CE966E4678D3761"], [24, PRIME32, "D7304C54EBAD40A9", "3162026714A6A243"],
  [48, 0n, "F942219AED80F67B", "A002AC4E5478227E"], [48, PRIME32, "7BA3C3E453A1934E", "163ADDE36C072295"],
  [81, 0n, "5E8BAFB9F95FB803", "4952F58181AB0042"], [81, PRIME32, "703FBB3D7A5F755C", "2724EC7ADC750FB6"],
  [222, 0n, "F1AEBD597CEC6B3A", "337E09641B948717"], [222, PRIME32, "AE995BB8AF917A8D", "91820016621E97F1"],
  [403, 0n, "CDEB804D65C6DEA4", "1B6DE21E332DD73D"], [403, PRIME64, "6259F6ECFD6443FD", "BED311971E0BE8F2"],
  [512, 0n, "617E49599013CB6B", "18D2D110DCC9BCA1"], [512, PRIME64, "3CE457DE14C27708", "925D06B8EC5B8040"],
  [2048, 0n, "DD59E2C3A5F038E0", "F736557FD47073A5"], [2048, PRIME32, "230D43F30206260B", "7FB03F7E7186C3EA"],
  [2240, 0n, "6E73A90539CF2948", "CCB134FBFA7CE49D"], [2240, PRIME32, "ED385111126FBA6F", "50A1FE17B338995F"],
  [2367, 0n, "CB37AEB9E5D361ED", "E89C0F6FF369B427"], [2367, PRIME32, "6F5360AE69C2F406", "D23AAE4B76C31ECB"],
];

/** Pinned: xxh3-128 over every digest this file checks, in order. Changing it breaks on-disk digests. */
const STABILITY = "c6409bb1ca885f24ae9c748afaed9152";

const buffer = sanityBuffer(2367);
const collected: Uint8Array[] = [];

function checkVectors(t: Test, algorithm: HashAlgorithm, vectors: Vector[]): void {
  for (const [length, seed, low, high] of vectors) {
    const input = buffer.subarray(0, length);
    const expected = ((high ?? "") + low).toLowerCase();
    const digest = hashBytes(algorithm, input, seed);
    collected.push(digest);
    t.equal(toHex(digest), expected, `${algorithm} length ${length} seed ${seed}`);
    const hasher = createHasher(algorithm, seed);
    for (let offset = 0; offset < length; offset++) hasher.update(input.subarray(offset, offset + 1));
    t.equal(toHex(hasher.digest()), expected, `${algorithm} length ${length} seed ${seed}, one byte at a time`);
    hasher.dispose();
  }
}

t.test("XXH64 known answers", async (t) => checkVectors(t, "xxh64", XXH64));
t.test("XXH3-64 known answers", async (t) => checkVectors(t, "xxh3-64", XXH3_64));
t.test("XXH3-128 known answers (canonical: high64 then low64)", async (t) => checkVectors(t, "xxh3-128", XXH3_128));

t.test("SHA-256 known answer", async (t) => {
  const digest = hashBytes("sha256", new TextEncoder().encode("abc"));
  collected.push(digest);
  t.equal(toHex(digest), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
});

t.test("STABILITY: digest of all known-answer and per-block digests", async (t) => {
  for (const algorithm of ["xxh3-128", "xxh3-64", "xxh64", "sha256"] as const) collected.push(hashBlocks(buffer, 256, algorithm));
  const total = collected.reduce((sum, digest) => sum + digest.length, 0);
  const all = new Uint8Array(total);
  let offset = 0;
  for (const digest of collected) {
    all.set(digest, offset);
    offset += digest.length;
  }
  t.equal(collected.length, XXH64.length + XXH3_64.length + XXH3_128.length + 1 + 4, "every digest collected");
  t.equal(toHex(hashBytes("xxh3-128", all)), STABILITY, "if this changes, on-disk digest compatibility broke");
});
