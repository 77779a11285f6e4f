package mimeparse

// Defects are named anomalies. The vocabulary is fixed: policies match these
// strings, so a name never changes meaning. A defect is recorded on the part
// where it was seen and once in Message.Defects. Defects named limit-<name>
// mean that something was not inspected; policies must treat that part as
// dangerous (fail closed). The inspectors (package inspect) add their own
// defects (archive, zip, OLE, TNEF, uuencode); see inspect/defects.go.
const (
	// DefectDuplicateContentType: more than one Content-Type field; the first
	// is used (as Python's email package and most clients do).
	DefectDuplicateContentType = "duplicate-content-type"
	// DefectDuplicateCTE: more than one Content-Transfer-Encoding field; the
	// first is used.
	DefectDuplicateCTE = "duplicate-content-transfer-encoding"
	// DefectDuplicateDisposition: more than one Content-Disposition field;
	// the first is used, names from all of them are kept in Names.
	DefectDuplicateDisposition = "duplicate-content-disposition"
	// DefectInvalidContentType: the Content-Type value is not type/subtype;
	// the RFC 2045 default (text/plain, or message/rfc822 in a digest) is used.
	DefectInvalidContentType = "invalid-content-type"
	// DefectNameFilenameMismatch: Content-Type name= and Content-Disposition
	// filename= name different files; Filename is filename=, both are in Names.
	DefectNameFilenameMismatch = "name-filename-mismatch"
	// DefectMixedRFC2231: a parameter is given both in RFC 2231 form (name*=)
	// and in plain form (name=) with different values; the RFC 2231 form wins
	// (as Thunderbird and Outlook read it), both are in Names.
	DefectMixedRFC2231 = "rfc2231-and-plain-parameter"
	// DefectDuplicateParameter: the same parameter appears twice in one
	// field; the first is used.
	DefectDuplicateParameter = "duplicate-parameter"
	// DefectMultipleBoundaries: several boundary= parameters; the first is
	// used, as mail clients do.
	DefectMultipleBoundaries = "multiple-boundary-parameters"
	// DefectBrokenRFC2231: an RFC 2231 parameter with missing or out of order
	// continuations, or an undecodable charset'language' prefix.
	DefectBrokenRFC2231 = "broken-rfc2231-parameter"
	// DefectEncodedWordInParameter: an RFC 2047 encoded word inside a
	// parameter value (forbidden by RFC 2047 §5, decoded anyway as clients do).
	DefectEncodedWordInParameter = "encoded-word-in-parameter"
	// DefectBidiInFilename: the filename contains Unicode bidirectional
	// control characters (RLO and friends), which make "exe.pdf" look like
	// "fdp.exe".
	DefectBidiInFilename = "bidi-control-in-filename"
	// DefectControlCharInFilename: a declared name holds a control character
	// (RFC 2231 %00, a raw NUL, another C0 or DEL). Programs that use C
	// strings stop there: the name up to it is added to Names, so
	// "invoice.js%00.pdf" is seen as invoice.js.
	DefectControlCharInFilename = "control-char-in-filename"
	// DefectCommentInParameters: an RFC 5322 comment "(...)" among the
	// parameters of Content-Type or Content-Disposition. A comment-aware
	// reader and a naive one see different parameters; the names of both
	// are in Names.
	DefectCommentInParameters = "comment-in-parameters"
	// DefectTrailingDotSpace: the filename ends in dots or spaces, which
	// Windows drops when saving ("a.exe." is a.exe); Ext is computed without them.
	DefectTrailingDotSpace = "trailing-dot-or-space-in-filename"
	// DefectTypeMismatch: the declared Content-Type contradicts the sniffed
	// content (an executable declared as something else, or a different
	// major type such as image/* that is really application/*).
	DefectTypeMismatch = "declared-type-mismatch"
	// DefectBytesAfterFinalBoundary: the epilogue (after a multipart's
	// closing boundary) holds a delimiter line of the multipart, or starts
	// with a Content-* field: readers that go on after the close delimiter
	// find parts there. Those parts are parsed as the reading "epilogue"
	// (readings.go) and are in Parts and Attachments.
	DefectBytesAfterFinalBoundary = "bytes-after-final-boundary"
	// DefectEpilogueText: non-blank text after a multipart's closing
	// boundary with no delimiter or part header in it (a mailing-list
	// footer, RFC 2046's own example). Harmless: no reader finds a part.
	DefectEpilogueText = "epilogue-text"
	// DefectMissingFinalBoundary: a multipart ended (end of message or an
	// outer boundary) without its closing boundary.
	DefectMissingFinalBoundary = "missing-final-boundary"
	// DefectAmbiguousBoundary: a multipart's boundary equals, or is a prefix
	// of, an enclosing multipart's boundary (RFC 2046 §5.1.2 forbids it), so
	// a delimiter line can be read as either's. The innermost gets it.
	DefectAmbiguousBoundary = "ambiguous-boundary"
	// DefectMissingStartBoundary: a multipart whose boundary never appears
	// in a body that is not empty; its whole body is inspected as one leaf.
	DefectMissingStartBoundary = "missing-start-boundary"
	// DefectEmptyMultipart: a multipart with nothing (or only white space)
	// between its header and its end: no parts, nothing hidden.
	DefectEmptyMultipart = "empty-multipart"
	// DefectMultipartWithoutBoundary: multipart/* without a boundary
	// parameter; the body is inspected as one leaf.
	DefectMultipartWithoutBoundary = "multipart-without-boundary"
	// DefectEmptyPart: two delimiter lines in a row; no part is created
	// between them (as Python's email package reads it).
	DefectEmptyPart = "empty-part"
	// DefectInvalidBase64: characters outside the base64 alphabet were
	// skipped while decoding.
	DefectInvalidBase64 = "invalid-base64"
	// DefectBase64Padding: base64 with missing or misplaced padding, or a
	// stray final character that cannot encode a byte (dropped).
	DefectBase64Padding = "invalid-base64-padding"
	// DefectBase64AfterPadding: base64 data after a padding "=": decoding
	// goes on (as clients that decode line by line do; Python stops there).
	DefectBase64AfterPadding = "base64-data-after-padding"
	// DefectInvalidQP: quoted-printable with a "=" not followed by two hex
	// digits or a line break; the "=" is kept literally.
	DefectInvalidQP = "invalid-quoted-printable"
	// DefectUnknownCTE: a Content-Transfer-Encoding that is not 7bit, 8bit,
	// binary, base64, quoted-printable or uuencode; the body is taken as is.
	DefectUnknownCTE = "unknown-content-transfer-encoding"
	// DefectUnknownCharset: a charset name golang.org/x/text does not know
	// (in Content-Type or in an encoded word); bytes are kept as they are.
	DefectUnknownCharset = "unknown-charset"
	// DefectInvalidEncodedWord: an RFC 2047 encoded word that cannot be
	// decoded; it is kept literally.
	DefectInvalidEncodedWord = "invalid-encoded-word"
	// DefectMissingHeaderBodySeparator: the header block did not end with an
	// empty line; the first line that is not a header starts the body.
	DefectMissingHeaderBodySeparator = "missing-header-body-separator"
	// DefectFirstLineContinuation: the header block starts with a folded
	// (whitespace) line; it is ignored.
	DefectFirstLineContinuation = "first-header-line-is-continuation"
	// DefectMissingHeaderName: a header line starting with ":"; ignored.
	DefectMissingHeaderName = "missing-header-name"
	// DefectSpaceBeforeColon: "Name : value" (RFC 5322 §4.5 obsolete syntax);
	// read as a field, as most clients do (Python ends the header there).
	DefectSpaceBeforeColon = "space-before-colon"
	// Defect8bitHeader: raw non-ASCII bytes in a header field (RFC 6532 UTF-8
	// is fine for message/global; invalid UTF-8 becomes U+FFFD in values).
	Defect8bitHeader = "8bit-header"
	// DefectBareCR: a CR not followed by LF inside a header line. We read it
	// as part of the line; readers that take a lone CR as a line break
	// (Python's email package reading a file, old Mac mail) see another
	// header there. (The proxy rejects or normalises bare CR in DATA.)
	DefectBareCR = "bare-cr-in-header"
	// DefectMisplacedUnixFrom: a "From " line in the middle of a header.
	DefectMisplacedUnixFrom = "misplaced-unix-from"
	// DefectMessageByContent: a leaf not declared as a message (an
	// application/octet-stream or text/plain attachment, a part named
	// .eml) whose bytes are a message header: the declared type lied, or
	// was only vague. It was parsed as an enclosed message too, its parts
	// grafted under it ("2.1", "2.2" ...) like a message/rfc822's, and
	// the part itself stays an attachment.
	DefectMessageByContent = "message-by-content"
	// DefectEncodedMessage: message/rfc822 or message/global with a base64 or
	// quoted-printable transfer encoding (RFC 2046 §5.2.1 forbids it); the
	// decoded body is inspected as a leaf, not parsed as a message.
	DefectEncodedMessage = "encoded-message"

	// DefectEncodedMultipart: a multipart with a base64 or quoted-printable
	// transfer encoding (RFC 2045 §6.4 forbids it). Its body is read as it
	// stands (as Python does); a client that decodes it first would see
	// another tree, which was not inspected.
	DefectEncodedMultipart = "encoded-multipart"
	// DefectPartialMessage: a message/partial fragment (RFC 2046 §5.2.2).
	// The whole message exists only once a client reassembles the fragments,
	// so it cannot be inspected here: treat it as dangerous.
	DefectPartialMessage = "partial-message"
	// DefectExternalBody: message/external-body (RFC 2046 §5.2.3). The body
	// is fetched by the client from elsewhere and was not inspected.
	DefectExternalBody = "external-body"

	// DefectLimitMimeDepth: nesting deeper than Limits.MimeDepth; the part
	// was inspected as one opaque leaf.
	DefectLimitMimeDepth = "limit-mime-depth"
	// DefectLimitMimeParts: more than Limits.MimeParts parts; later parts were
	// not listed or inspected.
	DefectLimitMimeParts = "limit-mime-parts"
	// DefectLimitHeaderBytes: a header block longer than Limits.HeaderBytes
	// or with more than 5000 fields (50000 in the whole message); the fields past the limit were not
	// recorded (a Content-Type among them is not seen: fail closed).
	DefectLimitHeaderBytes = "limit-header-bytes"
	// DefectLimitReadings: the message has more ambiguities than the
	// alternative readings the parser parses for one message (16); the
	// readings past that were not inspected.
	DefectLimitReadings = "limit-readings"
	// DefectLimitLineLength: a header line longer than Limits.LineLength.
	// Lines longer than the 64 KiB read buffer are cut there: the rest of
	// such a header line is dropped, and such a line in a body is never
	// taken for a delimiter. Body lines are not measured (it would cost a
	// scan of every line; transfer decoders do not care).
	DefectLimitLineLength = "limit-line-length"
	// DefectLimitVirusScanSize: the message is larger than clamd.max_size
	// (clamd's StreamMaxLength), so it was not sent to clamd and has no
	// virus verdict. Not the parser's: the front-end adds it to
	// Message.Defects when a policy reads Virus (package clamd's Enricher);
	// it is named here so that the vocabulary stays in one place.
	DefectLimitVirusScanSize = "limit-virus-scan-size"
)
