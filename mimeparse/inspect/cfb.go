package inspect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"unicode/utf16"
)

// A small, bounded reader of OLE2 / Compound File Binary files ([MS-CFB]):
// the directory (stream and storage names: VBA macros, encryption; the root
// CLSID: MSI), and the first bytes of the few streams whose headers say
// more (the Excel workbook globals: Excel 4.0 macro sheets and encryption;
// the Word FIB: encryption).

var errCFB = errors.New("inspect: bad compound file")

const (
	cfbMaxDirEntries = 1 << 16
	cfbEndOfChain    = 0xFFFFFFFE
	cfbFreeSect      = 0xFFFFFFFF
	cfbMaxStreamRead = 1 << 20 // bytes of one stream read to look at its records
)

// MSI and MSP root storage CLSIDs, as stored (little-endian GUID layout):
// {000C1084-0000-0000-C000-000000000046} and {000C1086-...}.
var (
	clsidMSI = []byte{0x84, 0x10, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46}
	clsidMSP = []byte{0x86, 0x10, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46}
)

// cfbFacts is what the compound file tells.
type cfbFacts struct {
	names     []string
	macros    bool   // VBA storage/streams, or an Excel 4.0 macro sheet
	msi       bool   // root CLSID of an MSI or MSP package
	encrypted bool   // encrypted OOXML package, RC4/XOR-encrypted xls or doc
	ole10     []byte // the \x01Ole10Native stream (an OLE Package object), first ole10Max bytes
	ole10Cut  bool   // that stream was longer than ole10Max
}

// ole10Max bounds the OLE Package payload read from a compound file into
// memory; a longer one is cut (defect limit-embedded).
const ole10Max = 16 << 20

type cfbEntry struct {
	name  string
	typ   byte // 1 storage, 2 stream, 5 root
	start uint32
	size  int64
}

type cfbFile struct {
	r          io.ReaderAt
	secSize    int64
	nSect      int64
	fat        []uint32
	miniFAT    []uint32
	miniCutoff int64
	root       cfbEntry
	rootCLSID  [16]byte
	entries    []cfbEntry
}

// ole inspects a top-level OLE2 body.
func (w *walker) ole(src readerAtSize) {
	f, err := readCFB(src)
	if err != nil {
		w.res.addDefect(DefectOLECorrupt)
		return
	}
	w.res.Macros = w.res.Macros || f.macros
	w.res.Executable = w.res.Executable || f.msi
	w.res.Encrypted = w.res.Encrypted || f.encrypted
	if f.ole10 != nil {
		w.res.addActive([]string{ActiveOLEPackage})
		w.olePackage(f, 0, false)
	}
}

// readCFB reads a compound file's directory and a few stream headers.
// Every loop is bounded by the file size and cfbMaxDirEntries; chains with
// cycles are cut.
func readCFB(r readerAtSize) (cfbFacts, error) {
	var facts cfbFacts
	c, err := openCFB(r)
	if err != nil {
		return facts, err
	}
	for _, e := range c.entries {
		facts.names = append(facts.names, e.name)
		switch strings.ToLower(e.name) {
		case "vba", "_vba_project", "_vba_project_cur", "macros":
			facts.macros = true
		case "encryptioninfo", "encryptedpackage":
			facts.encrypted = true
		case "\x01ole10native":
			if e.typ == 2 && facts.ole10 == nil {
				facts.ole10 = c.stream(e, ole10Max)
				facts.ole10Cut = e.size > ole10Max
			}
		case "workbook", "book":
			if e.typ == 2 {
				m, enc := xlsGlobals(c.stream(e, cfbMaxStreamRead))
				facts.macros = facts.macros || m
				facts.encrypted = facts.encrypted || enc
			}
		case "powerpoint document":
			if e.typ == 2 && c.scan(e, pptVBAInfo) {
				facts.macros = true
			}
		case "worddocument":
			if e.typ == 2 {
				fib := c.stream(e, 12)
				// [MS-DOC] FIB base: flags at 0x0A, fEncrypted is bit 8.
				if len(fib) >= 12 && binary.LittleEndian.Uint16(fib[10:])&0x0100 != 0 {
					facts.encrypted = true
				}
			}
		}
	}
	facts.msi = bytes.Equal(c.rootCLSID[:], clsidMSI) || bytes.Equal(c.rootCLSID[:], clsidMSP)
	return facts, nil
}

func openCFB(r readerAtSize) (*cfbFile, error) {
	size := r.Size()
	var hdr [512]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil || !bytes.Equal(hdr[:8], magicOLE) {
		return nil, errCFB
	}
	shift := binary.LittleEndian.Uint16(hdr[0x1E:])
	if shift != 9 && shift != 12 {
		return nil, errCFB
	}
	c := &cfbFile{r: r, secSize: int64(1) << shift}
	c.nSect = size/c.secSize + 1 // upper bound on valid sector numbers
	c.miniCutoff = int64(binary.LittleEndian.Uint32(hdr[0x38:]))

	// FAT sector numbers: 109 in the header, then the DIFAT chain.
	numFAT := int64(binary.LittleEndian.Uint32(hdr[0x2C:]))
	if numFAT > c.nSect {
		return nil, errCFB
	}
	fatSects := make([]uint32, 0, numFAT)
	for i := 0; i < 109 && int64(len(fatSects)) < numFAT; i++ {
		fatSects = append(fatSects, binary.LittleEndian.Uint32(hdr[0x4C+4*i:]))
	}
	difat := binary.LittleEndian.Uint32(hdr[0x44:])
	sec := make([]byte, c.secSize)
	for steps := int64(0); int64(len(fatSects)) < numFAT && difat < cfbEndOfChain-2; steps++ {
		if steps > c.nSect || !c.readSect(sec, difat) {
			return nil, errCFB
		}
		per := int(c.secSize/4) - 1
		for i := 0; i < per && int64(len(fatSects)) < numFAT; i++ {
			fatSects = append(fatSects, binary.LittleEndian.Uint32(sec[4*i:]))
		}
		difat = binary.LittleEndian.Uint32(sec[4*per:])
	}
	// The FAT itself: one uint32 per sector.
	c.fat = make([]uint32, 0, min(numFAT*c.secSize/4, c.nSect+c.secSize/4))
	for _, s := range fatSects {
		if !c.readSect(sec, s) {
			return nil, errCFB
		}
		for i := int64(0); i < c.secSize/4; i++ {
			c.fat = append(c.fat, binary.LittleEndian.Uint32(sec[4*i:]))
		}
	}
	// The directory.
	dir := c.chain(binary.LittleEndian.Uint32(hdr[0x30:]), cfbMaxDirEntries*128/c.secSize+1)
	for _, s := range dir {
		if !c.readSect(sec, s) {
			break
		}
		for off := int64(0); off+128 <= c.secSize; off += 128 {
			d := sec[off : off+128]
			if d[0x42] == 0 { // unused
				continue
			}
			e := cfbEntry{name: cfbName(d), typ: d[0x42], start: binary.LittleEndian.Uint32(d[0x74:]),
				size: int64(binary.LittleEndian.Uint64(d[0x78:]))}
			if c.secSize == 512 {
				e.size &= 0xFFFFFFFF // version 3: the high half may be junk
			}
			if len(c.entries) == 0 && e.typ == 5 {
				c.root = e
				copy(c.rootCLSID[:], d[0x50:0x60])
			}
			c.entries = append(c.entries, e)
		}
	}
	if len(c.entries) == 0 {
		return nil, errCFB
	}
	// The mini FAT (for streams under the cutoff).
	for _, s := range c.chain(binary.LittleEndian.Uint32(hdr[0x3C:]), c.nSect) {
		if !c.readSect(sec, s) {
			break
		}
		for i := int64(0); i < c.secSize/4; i++ {
			c.miniFAT = append(c.miniFAT, binary.LittleEndian.Uint32(sec[4*i:]))
		}
	}
	return c, nil
}

func (c *cfbFile) readSect(buf []byte, s uint32) bool {
	if int64(s) >= c.nSect {
		return false
	}
	n, err := c.r.ReadAt(buf, (int64(s)+1)*c.secSize)
	if err == io.EOF && n > 0 {
		clear(buf[n:])
		return true
	}
	return err == nil
}

// chain follows a FAT chain from s, at most max sectors, stopping at a
// cycle or an invalid link.
func (c *cfbFile) chain(s uint32, max int64) []uint32 {
	return followChain(c.fat, s, max)
}

func followChain(fat []uint32, s uint32, max int64) []uint32 {
	var out []uint32
	for int64(len(out)) < max && s < cfbEndOfChain-2 && int(s) < len(fat) {
		out = append(out, s)
		s = fat[s]
	}
	return out
}

// stream returns the first at most n bytes of stream e (regular or mini).
func (c *cfbFile) stream(e cfbEntry, n int64) []byte {
	n = min(n, e.size)
	if n <= 0 {
		return nil
	}
	out := make([]byte, 0, n)
	if e.size >= c.miniCutoff {
		sec := make([]byte, c.secSize)
		for _, s := range c.chain(e.start, n/c.secSize+1) {
			if !c.readSect(sec, s) {
				break
			}
			out = append(out, sec[:min(c.secSize, n-int64(len(out)))]...)
		}
		return out
	}
	// Mini stream: 64-byte sectors inside the root entry's stream.
	rootSects := c.chain(c.root.start, c.nSect)
	var mini [64]byte
	for _, ms := range followChain(c.miniFAT, e.start, n/64+1) {
		off := int64(ms) * 64
		idx := off / c.secSize
		if idx >= int64(len(rootSects)) {
			break
		}
		pos := (int64(rootSects[idx])+1)*c.secSize + off%c.secSize
		if _, err := c.r.ReadAt(mini[:], pos); err != nil {
			break
		}
		out = append(out, mini[:min(64, n-int64(len(out)))]...)
	}
	return out
}

// pptVBAInfo is the start of a PowerPoint VBAInfoContainer ([MS-PPT]
// 2.4.10: rh recVer 0xF, recType 0x03FF, recLen 0x14) followed by its
// VBAInfoAtom header (recVer 2, recType 0x0400, recLen 0x0C): present in
// the DocumentContainer when the presentation has a VBA project.
var pptVBAInfo = []byte{0x0F, 0x00, 0xFF, 0x03, 0x14, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x04, 0x0C, 0x00, 0x00, 0x00}

// scan reports whether pattern occurs in regular stream e. It reads one
// sector at a time; sectors are bounded by the file size.
func (c *cfbFile) scan(e cfbEntry, pattern []byte) bool {
	if e.size < c.miniCutoff {
		return bytes.Contains(c.stream(e, e.size), pattern)
	}
	sec := make([]byte, c.secSize)
	win := make([]byte, 0, c.secSize+int64(len(pattern)))
	left := e.size
	for _, s := range c.chain(e.start, e.size/c.secSize+1) {
		if !c.readSect(sec, s) {
			return false
		}
		n := min(c.secSize, left)
		left -= n
		win = append(win, sec[:n]...)
		if bytes.Contains(win, pattern) {
			return true
		}
		keep := min(len(win), len(pattern)-1)
		win = append(win[:0], win[len(win)-keep:]...)
	}
	return false
}

// xlsGlobals walks the BIFF records of a workbook's globals substream (up
// to its EOF record): a BoundSheet8 record with sheet type 1 is an Excel
// 4.0 macro sheet ([MS-XLS] 2.4.28), a FilePass record means the workbook
// is encrypted ([MS-XLS] 2.4.117).
func xlsGlobals(b []byte) (macros, encrypted bool) {
	for first := true; len(b) >= 4; first = false {
		typ := binary.LittleEndian.Uint16(b)
		n := int(binary.LittleEndian.Uint16(b[2:]))
		if first && typ != 0x0809 { // BOF
			return
		}
		if 4+n > len(b) {
			return
		}
		data := b[4 : 4+n]
		switch typ {
		case 0x0085: // BoundSheet8: lbPlyPos(4) hsState(1) dt(1)
			if len(data) >= 6 && data[5] == 1 {
				macros = true
			}
		case 0x002F: // FilePass
			encrypted = true
		case 0x000A: // EOF of the globals substream
			return
		}
		b = b[4+n:]
	}
	return
}

// cfbName decodes the UTF-16LE name of a 128-byte directory entry.
func cfbName(e []byte) string {
	nl := int(binary.LittleEndian.Uint16(e[0x40:]))
	if nl > 64 {
		nl = 64
	}
	u := make([]uint16, 0, nl/2)
	for i := 0; i+1 < nl; i += 2 {
		c := binary.LittleEndian.Uint16(e[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}
