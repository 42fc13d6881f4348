// Status codes returned by every WASM export that can fail. The core never throws on bad
// data: it returns one of these and the TS driver (src/wasm/status.ts) maps it to a
// VhdsyncError. Ranges: 0-99 generic, 100-199 VHD, 200-299 VHDX, 300-399 HRL, 400-499 digest.
// Keep this table in sync with src/wasm/status.ts (a test checks both).

export const STATUS_OK: i32 = 0;
/** Pointer/length/size argument outside what the kernel accepts (a caller bug). */
export const STATUS_BAD_ARGUMENT: i32 = 1;
/** Output area too small for the result. */
export const STATUS_OUTPUT_TOO_SMALL: i32 = 2;
/** Unknown algorithm identifier. */
export const STATUS_BAD_ALGORITHM: i32 = 3;
/** Block size is zero, not a power of two, or out of the supported range. */
export const STATUS_BAD_BLOCK_SIZE: i32 = 4;

// ---- VHD (100-199): footer, dynamic header, BAT, bitmaps (assembly/vhd/) ----
/** Footer cookie is not "conectix". */
export const STATUS_VHD_BAD_FOOTER_COOKIE: i32 = 100;
/** Footer checksum does not match. */
export const STATUS_VHD_BAD_FOOTER_CHECKSUM: i32 = 101;
/** File format version is not 1.x. */
export const STATUS_VHD_UNSUPPORTED_VERSION: i32 = 102;
/** Disk type is not fixed (2), dynamic (3) or differencing (4). */
export const STATUS_VHD_UNSUPPORTED_DISK_TYPE: i32 = 103;
/** Current size is not a multiple of 512 or is absurdly large. */
export const STATUS_VHD_BAD_SIZE: i32 = 104;
/** The dynamic header's offset lies outside the file. */
export const STATUS_VHD_HEADER_PAST_EOF: i32 = 105;
/** A fixed disk's file is shorter than its virtual size plus the footer. */
export const STATUS_VHD_FILE_TOO_SMALL: i32 = 106;
/** Dynamic header cookie is not "cxsparse". */
export const STATUS_VHD_BAD_HEADER_COOKIE: i32 = 110;
/** Dynamic header checksum does not match. */
export const STATUS_VHD_BAD_HEADER_CHECKSUM: i32 = 111;
/** Dynamic header version is not 1.x. */
export const STATUS_VHD_UNSUPPORTED_HEADER_VERSION: i32 = 112;
/** Block size is not a power of two between 512 B and 256 MiB. */
export const STATUS_VHD_BAD_BLOCK_SIZE: i32 = 113;
/** The BAT overlaps the footer copy or the dynamic header. */
export const STATUS_VHD_BAD_TABLE_OFFSET: i32 = 114;
/** The BAT extends past the end of the file. */
export const STATUS_VHD_TABLE_PAST_EOF: i32 = 115;
/** The BAT has fewer entries than the virtual size needs. */
export const STATUS_VHD_TABLE_TOO_SMALL: i32 = 116;
/** The BAT has more entries than vhdsync supports (2^22). */
export const STATUS_VHD_TABLE_TOO_LARGE: i32 = 117;
/** A parent locator's data lies outside the file or is absurdly long. */
export const STATUS_VHD_BAD_LOCATOR: i32 = 118;
/** A BAT entry points at a block that extends past the data area of the file. */
export const STATUS_VHD_BLOCK_PAST_EOF: i32 = 120;
/** Two BAT entries point at overlapping blocks. */
export const STATUS_VHD_BLOCK_OVERLAP: i32 = 121;
/** A BAT entry points at a block that overlaps metadata (footer copy, header, BAT, locators). */
export const STATUS_VHD_BLOCK_OVERLAPS_METADATA: i32 = 122;
/** A sector whose bitmap bit is clear holds non-zero data. */
export const STATUS_VHD_BITMAP_DATA_MISMATCH: i32 = 123;

// 200-299 VHDX ([MS-VHDX]); mapped in src/wasm/status.ts.
/** File type identifier is not "vhdxfile". */
export const STATUS_VHDX_BAD_IDENTIFIER: i32 = 200;
/** Neither header has a valid "head" signature. */
export const STATUS_VHDX_NO_VALID_HEADER: i32 = 201;
/** Header signatures present, but no header has a valid CRC-32C. */
export const STATUS_VHDX_HEADER_BAD_CHECKSUM: i32 = 202;
/** Header Version is not 1, or LogVersion is not 0 with a non-empty log. */
export const STATUS_VHDX_UNSUPPORTED_VERSION: i32 = 203;
/** Log offset/length not 1 MiB multiples or inside the header section. */
export const STATUS_VHDX_BAD_LOG_LOCATION: i32 = 204;
/** No region table copy has a valid CRC-32C. */
export const STATUS_VHDX_REGION_BAD_CHECKSUM: i32 = 205;
/** Region table: bad signature, entry count, alignment, duplicates or overlap. */
export const STATUS_VHDX_REGION_CORRUPT: i32 = 206;
/** A region marked required is not known to this implementation. */
export const STATUS_VHDX_REGION_UNKNOWN_REQUIRED: i32 = 207;
/** The BAT or metadata region is missing. */
export const STATUS_VHDX_REGION_MISSING: i32 = 208;
/** Metadata table: bad signature, entry count, item bounds or duplicates. */
export const STATUS_VHDX_METADATA_CORRUPT: i32 = 209;
/** A metadata item marked required is not known to this implementation. */
export const STATUS_VHDX_METADATA_UNKNOWN_REQUIRED: i32 = 210;
/** A required metadata item (file parameters, disk size, sector size, parent locator) is missing. */
export const STATUS_VHDX_METADATA_MISSING: i32 = 211;
/** Block size not a power of two in [1 MiB, 256 MiB]. */
export const STATUS_VHDX_BAD_BLOCK_SIZE: i32 = 212;
/** Logical/physical sector size not 512 or 4096. */
export const STATUS_VHDX_BAD_SECTOR_SIZE: i32 = 213;
/** Virtual disk size not a sector multiple or above 64 TiB. */
export const STATUS_VHDX_BAD_VIRTUAL_SIZE: i32 = 214;
/** The BAT region is smaller than the disk needs. */
export const STATUS_VHDX_BAT_TOO_SMALL: i32 = 215;
/** A BAT entry has a reserved or invalid state for this disk type. */
export const STATUS_VHDX_BAT_BAD_STATE: i32 = 216;
/** A BAT entry points into the header section. */
export const STATUS_VHDX_BAT_BAD_OFFSET: i32 = 217;
/** A BAT entry points past the end of the file. */
export const STATUS_VHDX_BAT_BEYOND_EOF: i32 = 218;
/** Parent locator: bad header, key/value bounds, or missing parent_linkage. */
export const STATUS_VHDX_LOCATOR_CORRUPT: i32 = 219;
/** Parent locator type is not the VHDX locator. */
export const STATUS_VHDX_LOCATOR_UNSUPPORTED: i32 = 220;
/** The log is not empty but holds no valid, complete sequence. */
export const STATUS_VHDX_LOG_NO_SEQUENCE: i32 = 221;
/** The file is shorter than the active log sequence's FlushedFileOffset. */
export const STATUS_VHDX_LOG_TRUNCATED: i32 = 222;
/** A log entry is malformed (signature, lengths, GUID, descriptors, sequence numbers). */
export const STATUS_VHDX_LOG_ENTRY_CORRUPT: i32 = 223;
/** A log entry's CRC-32C does not match. */
export const STATUS_VHDX_LOG_ENTRY_BAD_CHECKSUM: i32 = 224;
/** A BAT entry's block overlaps the BAT, metadata or log region ([MS-VHDX] 2.5.1: no overlap with any other structure). */
export const STATUS_VHDX_BAT_OVERLAPS_REGION: i32 = 225;

// ---- HRL (300-399): Hyper-V Replica log, [MS-HRL] (assembly/hrl/) ----
/** The buffer holds less than the structure needs (header < 4096 bytes, block < MetadataSize). */
export const STATUS_HRL_TRUNCATED: i32 = 300;
/** Cookie is not "msctlog". */
export const STATUS_HRL_BAD_COOKIE: i32 = 301;
/** Log file header checksum does not match. */
export const STATUS_HRL_HEADER_CHECKSUM: i32 = 302;
/** LogFormatVersion major is not 1 or 2. */
export const STATUS_HRL_UNSUPPORTED_VERSION: i32 = 303;
/** FileType is not 0 (HRL). */
export const STATUS_HRL_UNSUPPORTED_FILE_TYPE: i32 = 304;
/** MetadataSize is not a multiple of 32 between 64 bytes and 1 MiB. */
export const STATUS_HRL_BAD_METADATA_SIZE: i32 = 305;
/** EOLLocation is non-zero but cannot end a metadata block. */
export const STATUS_HRL_BAD_EOL: i32 = 306;
/** EOLLocation is 0: the log was not closed cleanly. */
export const STATUS_HRL_UNCLEAN: i32 = 307;
/** The header records a non-zero ErrorCode: change tracking failed. */
export const STATUS_HRL_ERROR_RECORDED: i32 = 308;
/** Metadata header checksum does not match. */
export const STATUS_HRL_METADATA_CHECKSUM: i32 = 310;
/** PreviousMetadataLocation points outside the log or into this block. */
export const STATUS_HRL_BAD_METADATA_LINK: i32 = 311;
/** ValidMetadataEntries exceeds what the metadata block holds. */
export const STATUS_HRL_TOO_MANY_ENTRIES: i32 = 312;
/** A metadata entry's checksum does not match. */
export const STATUS_HRL_ENTRY_CHECKSUM: i32 = 313;
/** A metadata entry's MetaOperation is not 1 (write). */
export const STATUS_HRL_BAD_OPERATION: i32 = 314;
/** A metadata entry writes past the end of the disk it is applied to. */
export const STATUS_HRL_ENTRY_OUTSIDE_DISK: i32 = 315;
/** The entries' data lengths do not fill the space between two metadata blocks exactly. */
export const STATUS_HRL_DATA_LAYOUT: i32 = 316;
/** An entry's data does not match its DataChecksum. */
export const STATUS_HRL_DATA_CHECKSUM: i32 = 317;
