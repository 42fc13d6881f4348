// Constants of the VHDX on-disk layout ([MS-VHDX] 2.2-2.6): signatures (as little-endian
// integers), fixed offsets, well-known GUIDs in binary (mixed-endian) form, and GUID compare.

export const KIB: u64 = 1024;
export const MIB: u64 = 1024 * 1024;
export const HEADER_SECTION_BYTES: u64 = MIB;
export const HEADER1_OFFSET: usize = 64 * 1024;
export const HEADER2_OFFSET: usize = 128 * 1024;
export const HEADER_BYTES: usize = 4096;
export const REGION_TABLE1_OFFSET: usize = 192 * 1024;
export const REGION_TABLE2_OFFSET: usize = 256 * 1024;
export const REGION_TABLE_BYTES: usize = 64 * 1024;
/** Bytes of the header section the parsers look at: identifier, 2 headers, 2 region tables. */
export const HEADER_AREA_BYTES: usize = 320 * 1024;
export const METADATA_TABLE_BYTES: u32 = 64 * 1024;
export const LOG_SECTOR_BYTES: u32 = 4096;

export const SIGNATURE_FILE: u64 = 0x656c696678646876; // "vhdxfile"
export const SIGNATURE_HEADER: u32 = 0x64616568; // "head"
export const SIGNATURE_REGION: u32 = 0x69676572; // "regi"
export const SIGNATURE_METADATA: u64 = 0x617461646174656d; // "metadata"
export const SIGNATURE_LOG_ENTRY: u32 = 0x65676f6c; // "loge"
export const SIGNATURE_DATA_DESCRIPTOR: u32 = 0x63736564; // "desc"
export const SIGNATURE_ZERO_DESCRIPTOR: u32 = 0x6f72657a; // "zero"
export const SIGNATURE_DATA_SECTOR: u32 = 0x61746164; // "data"

// GUIDs in the on-disk binary form (Data1..Data3 little-endian, Data4 as bytes).
/** BAT region 2DC27766-F623-4200-9D64-115E9BFD4A08. */
export const GUID_BAT_REGION: usize = memory.data<u8>([0x66, 0x77, 0xc2, 0x2d, 0x23, 0xf6, 0x00, 0x42, 0x9d, 0x64, 0x11, 0x5e, 0x9b, 0xfd, 0x4a, 0x08]);
/** Metadata region 8B7CA206-4790-4B9A-B8FE-575F050F886E. */
export const GUID_METADATA_REGION: usize = memory.data<u8>([0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b, 0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e]);
/** File Parameters CAA16737-FA36-4D43-B3B6-33F0AA44E76B. */
export const GUID_FILE_PARAMETERS: usize = memory.data<u8>([0x37, 0x67, 0xa1, 0xca, 0x36, 0xfa, 0x43, 0x4d, 0xb3, 0xb6, 0x33, 0xf0, 0xaa, 0x44, 0xe7, 0x6b]);
/** Virtual Disk Size 2FA54224-CD1B-4876-B211-5DBED83BF4B8. */
export const GUID_VIRTUAL_DISK_SIZE: usize = memory.data<u8>([0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48, 0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8]);
/** Virtual Disk ID BECA12AB-B2E6-4523-93EF-C309E000C746. */
export const GUID_VIRTUAL_DISK_ID: usize = memory.data<u8>([0xab, 0x12, 0xca, 0xbe, 0xe6, 0xb2, 0x23, 0x45, 0x93, 0xef, 0xc3, 0x09, 0xe0, 0x00, 0xc7, 0x46]);
/** Logical Sector Size 8141BF1D-A96F-4709-BA47-F233A8FAAB5F. */
export const GUID_LOGICAL_SECTOR_SIZE: usize = memory.data<u8>([0x1d, 0xbf, 0x41, 0x81, 0x6f, 0xa9, 0x09, 0x47, 0xba, 0x47, 0xf2, 0x33, 0xa8, 0xfa, 0xab, 0x5f]);
/** Physical Sector Size CDA348C7-445D-4471-9CC9-E9885251C556. */
export const GUID_PHYSICAL_SECTOR_SIZE: usize = memory.data<u8>([0xc7, 0x48, 0xa3, 0xcd, 0x5d, 0x44, 0x71, 0x44, 0x9c, 0xc9, 0xe9, 0x88, 0x52, 0x51, 0xc5, 0x56]);
/** Parent Locator A8D35F2D-B30B-454D-ABF7-D3D84834AB0C. */
export const GUID_PARENT_LOCATOR: usize = memory.data<u8>([0x2d, 0x5f, 0xd3, 0xa8, 0x0b, 0xb3, 0x4d, 0x45, 0xab, 0xf7, 0xd3, 0xd8, 0x48, 0x34, 0xab, 0x0c]);
/** VHDX parent locator type B04AEFB7-D19E-4A81-B789-25B8E9445913. */
export const GUID_VHDX_LOCATOR_TYPE: usize = memory.data<u8>([0xb7, 0xef, 0x4a, 0xb0, 0x9e, 0xd1, 0x81, 0x4a, 0xb7, 0x89, 0x25, 0xb8, 0xe9, 0x44, 0x59, 0x13]);

/** True if the 16 bytes at `a` equal the 16 bytes at `b`. */
export function guidEquals(a: usize, b: usize): bool {
  return load<u64>(a) == load<u64>(b) && load<u64>(a + 8) == load<u64>(b + 8);
}

/** True if the 16 bytes at `a` are all zero. */
export function guidIsZero(a: usize): bool {
  return load<u64>(a) == 0 && load<u64>(a + 8) == 0;
}

/** Returns true if `value` is a multiple of the power of two `alignment`. */
@inline export function isAligned(value: u64, alignment: u64): bool {
  return (value & (alignment - 1)) == 0;
}
