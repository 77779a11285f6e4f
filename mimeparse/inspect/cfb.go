package inspect

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"unicode/utf16"
)

// A small, bounded reader of the directory of an OLE2 / Compound File
// Binary file ([MS-CFB]): enough to see the stream and storage names (VBA
// macros, encryption) and the root CLSID (MSI). It never reads stream data.

var errCFB = errors.New("inspect: bad compound file")

const (
	cfbMaxDirEntries = 1 << 16
	cfbEndOfChain    = 0xFFFFFFFE
	cfbFreeSect      = 0xFFFFFFFF
)

// MSI and MSP root storage CLSIDs, as stored (little-endian GUID layout):
// {000C1084-0000-0000-C000-000000000046} and {000C1086-...}.
var (
	clsidMSI = []byte{0x84, 0x10, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46}
	clsidMSP = []byte{0x86, 0x10, 0x0C, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46}
)

// cfbFacts is what the directory tells.
type cfbFacts struct {
	names     []string
	macros    bool // a VBA / _VBA_PROJECT / _VBA_PROJECT_CUR / Macros storage or stream
	msi       bool // root CLSID of an MSI or MSP package
	encrypted bool // an encrypted OOXML package (EncryptionInfo / EncryptedPackage)
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
}

// readCFB reads the directory of a compound file. Every loop is bounded by
// the file size and cfbMaxDirEntries; chains with cycles are cut.
func readCFB(r readerAtSize) (cfbFacts, error) {
	var facts cfbFacts
	size := r.Size()
	var hdr [512]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil || !bytes.Equal(hdr[:8], magicOLE) {
		return facts, errCFB
	}
	shift := binary.LittleEndian.Uint16(hdr[0x1E:])
	if shift != 9 && shift != 12 {
		return facts, errCFB
	}
	secSize := int64(1) << shift
	nSect := size/secSize + 1 // upper bound on valid sector numbers
	sectOff := func(s uint32) int64 { return (int64(s) + 1) * secSize }

	// FAT sector numbers: 109 in the header, then the DIFAT chain.
	numFAT := int64(binary.LittleEndian.Uint32(hdr[0x2C:]))
	if numFAT > nSect {
		return facts, errCFB
	}
	fatSects := make([]uint32, 0, numFAT)
	for i := 0; i < 109 && int64(len(fatSects)) < numFAT; i++ {
		fatSects = append(fatSects, binary.LittleEndian.Uint32(hdr[0x4C+4*i:]))
	}
	difat := binary.LittleEndian.Uint32(hdr[0x44:])
	sec := make([]byte, secSize)
	for steps := int64(0); int64(len(fatSects)) < numFAT && difat < cfbEndOfChain-2; steps++ {
		if steps > nSect || int64(difat) >= nSect {
			return facts, errCFB
		}
		if _, err := r.ReadAt(sec, sectOff(difat)); err != nil {
			return facts, errCFB
		}
		per := int(secSize/4) - 1
		for i := 0; i < per && int64(len(fatSects)) < numFAT; i++ {
			fatSects = append(fatSects, binary.LittleEndian.Uint32(sec[4*i:]))
		}
		difat = binary.LittleEndian.Uint32(sec[4*per:])
	}

	// The FAT itself: one uint32 per sector.
	fat := make([]uint32, 0, min(numFAT*secSize/4, nSect+secSize/4))
	for _, s := range fatSects {
		if int64(s) >= nSect {
			return facts, errCFB
		}
		if _, err := r.ReadAt(sec, sectOff(s)); err != nil && err != io.EOF {
			return facts, errCFB
		}
		for i := int64(0); i < secSize/4; i++ {
			fat = append(fat, binary.LittleEndian.Uint32(sec[4*i:]))
		}
	}

	// The directory chain.
	dir := binary.LittleEndian.Uint32(hdr[0x30:])
	n := 0
	for steps := int64(0); dir < cfbEndOfChain-2; steps++ {
		if steps > nSect || int64(dir) >= nSect || n >= cfbMaxDirEntries {
			break
		}
		if _, err := r.ReadAt(sec, sectOff(dir)); err != nil && err != io.EOF {
			return facts, errCFB
		}
		for off := int64(0); off+128 <= secSize; off += 128 {
			e := sec[off : off+128]
			typ := e[0x42]
			if typ == 0 { // unused
				continue
			}
			name := cfbName(e)
			if n == 0 && typ == 5 {
				facts.msi = bytes.Equal(e[0x50:0x60], clsidMSI) || bytes.Equal(e[0x50:0x60], clsidMSP)
			}
			facts.names = append(facts.names, name)
			n++
		}
		if int(dir) >= len(fat) {
			break
		}
		dir = fat[dir]
	}
	if n == 0 {
		return facts, errCFB
	}
	for _, name := range facts.names {
		switch strings.ToLower(name) {
		case "vba", "_vba_project", "_vba_project_cur", "macros":
			facts.macros = true
		case "encryptioninfo", "encryptedpackage":
			facts.encrypted = true
		}
	}
	return facts, nil
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
