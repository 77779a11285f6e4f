package inspect

// Defects the inspectors report in Result.Defects. The vocabulary is fixed:
// policies match these strings. Every defect that means "something was not
// inspected" is named limit-<name> or says corrupt/unsupported, and a policy
// should treat the attachment as dangerous when it sees one (fail closed).
const (
	// DefectLimitInspectSpill: the body needed random access (zip, OLE2,
	// gzip, bzip2, xz, zstd, tar, rar, 7z, cab, TNEF) but was larger than Options.Spill; the part
	// past the limit was not inspected, its archive listing and macro flag
	// are incomplete or missing.
	DefectLimitInspectSpill = "limit-inspect-spill"
	// DefectLimitArchiveDepth: an archive nested deeper than
	// Options.ArchiveDepth was listed as an entry but not opened.
	DefectLimitArchiveDepth = "limit-archive-depth"
	// DefectLimitArchiveEntries: more than Options.ArchiveEntries entries;
	// the rest were not listed.
	DefectLimitArchiveEntries = "limit-archive-entries"
	// DefectLimitArchiveBytes: the total number of bytes decompressed to sniff
	// entries and open nested archives hit its bound (a zip bomb, or just
	// a large archive); later entries were listed without a sniffed type.
	DefectLimitArchiveBytes = "limit-archive-bytes"
	// DefectLimitDecompressedBytes: the message's one decompression budget
	// (Options.Budget, limits.decompressed_bytes) is used up: this entry and
	// every later one in the message were listed without being decompressed.
	DefectLimitDecompressedBytes = "limit-decompressed-bytes"
	// DefectLimitArchiveDict: a decoder would need a dictionary, window or
	// model larger than Options.ArchiveDict (LZMA/LZMA2/PPMd/zstd in 7z, xz,
	// zstd, rar), as the archive's own headers say; it was not opened, and
	// what it holds was listed without a sniffed type, or not at all.
	DefectLimitArchiveDict = "limit-archive-dict"
	// DefectLimitEmbedded: more uuencode blocks or TNEF attachments than
	// maxEmbedded, or TNEF nested in TNEF too deep; the rest were not
	// inspected.
	DefectLimitEmbedded = "limit-embedded"
	// DefectZipNameMismatch: a zip entry's name in the central directory
	// differs from the name in its local file header. Both names are listed.
	DefectZipNameMismatch = "zip-name-mismatch"
	// DefectZipHiddenEntry: a zip local file header that the central
	// directory does not reference (two zips concatenated: Windows and most
	// tools show the last one, 7-Zip and streaming extractors the first;
	// or an entry left out of the directory). It is listed too.
	DefectZipHiddenEntry = "zip-hidden-entry"
	// DefectZipPrefix: a zip whose first entry does not start at offset 0
	// (data prepended to the archive: a self-extractor or a polyglot file),
	// or a body that does not start as a zip but ends with a zip's end
	// record. Zip readers that start from the end (most do) see an archive
	// that was not listed: treat it as uninspected.
	DefectZipPrefix = "zip-prefix"
	// DefectArchiveCorrupt: the first bytes say archive (zip, gzip, bzip2,
	// xz, zstd, tar, rar, 7z, cab) but it could not be read to the end; the listing is incomplete.
	DefectArchiveCorrupt = "archive-corrupt"
	// DefectArchiveEncryptedHeaders: the archive's entry names themselves are
	// encrypted (rar -hp, 7z -mhe); nothing inside could be listed.
	// Encrypted is set too.
	DefectArchiveEncryptedHeaders = "archive-encrypted-headers"
	// DefectArchiveUnsupported: the archive uses a method or variant the
	// reader cannot list (for example a rar multi-volume set).
	DefectArchiveUnsupported = "archive-unsupported"
	// DefectOLECorrupt: an OLE2 compound file (doc, xls, ppt, msi) whose
	// directory could not be read; macros and MSI-ness are unknown.
	DefectOLECorrupt = "ole-corrupt"
	// DefectTNEFCorrupt: a TNEF (winmail.dat) stream that ends early or has
	// a malformed attribute; attachments after that point are not listed.
	DefectTNEFCorrupt = "tnef-corrupt"
	// DefectUUEncodeUnterminated: a uuencode block without its "end" line;
	// what was decoded up to the end of the body is reported.
	DefectUUEncodeUnterminated = "uuencode-unterminated"
	// DefectUUEncodeCorrupt: a line inside a uuencode block that is not
	// valid uuencode; it was decoded leniently, as mail clients do.
	DefectUUEncodeCorrupt = "uuencode-corrupt"
	// DefectSpillFailed: the temp file for random access could not be
	// created or written (disk full, permissions); nothing needing random
	// access was inspected.
	DefectSpillFailed = "spill-failed"
	// DefectCarrierCorrupt: a document, page, calendar or disk image that
	// carries files (carrier.go: PDF, RTF, OneNote, HTML/SVG, iCalendar,
	// FAT image) whose structure could not be followed to the end (a
	// stream that does not decompress, a length past the end, a broken
	// file system); what it carries may not all be listed.
	DefectCarrierCorrupt = "carrier-corrupt"
	// DefectPDFUnsupportedFilter: a PDF embedded file or object stream
	// uses a filter the reader does not decode (only FlateDecode,
	// ASCIIHexDecode and ASCII85Decode are); its content was not looked at.
	DefectPDFUnsupportedFilter = "pdf-unsupported-filter"
	// DefectLimitDeflate64: a zip entry compressed with Deflate64 (method
	// 9, what Windows Explorer uses for large files), for which there is no
	// decoder here: the entry is listed by name and size, its content was
	// not inspected (fail closed).
	DefectLimitDeflate64 = "limit-deflate64"
)

// AllDefects lists every defect this package can report, for documentation
// and for policy linting.
var AllDefects = []string{
	DefectLimitInspectSpill, DefectLimitArchiveDepth, DefectLimitArchiveEntries,
	DefectLimitArchiveBytes, DefectLimitDecompressedBytes, DefectLimitArchiveDict, DefectLimitEmbedded, DefectZipNameMismatch, DefectZipHiddenEntry,
	DefectZipPrefix, DefectArchiveCorrupt, DefectArchiveEncryptedHeaders,
	DefectArchiveUnsupported, DefectOLECorrupt, DefectTNEFCorrupt,
	DefectUUEncodeUnterminated, DefectUUEncodeCorrupt, DefectSpillFailed, DefectLimitDeflate64,
	DefectCarrierCorrupt, DefectPDFUnsupportedFilter,
}
