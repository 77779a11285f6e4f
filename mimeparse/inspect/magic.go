package inspect

import (
	"bytes"
	"encoding/binary"
	"strings"
)

// kind is a container format whose first bytes ask for a deeper look.
type kind uint8

const (
	kindNone kind = iota
	kindZip
	kindOLE
	kindGzip
	kindTar
	kindRar
	kind7z
	kindTNEF
	kindBzip2
	kindXz
	kindZstd
	kindCab
	kindISO // a possible ISO 9660 image (see maybeISO)
)

func (k kind) String() string {
	return [...]string{"none", "zip", "ole", "gzip", "tar", "rar", "7z", "tnef", "bzip2", "xz", "zstd", "cab", "iso"}[k]
}

// randomAccess reports whether the format can only be read with its end in
// hand (a truncated spill is then useless).
func (k kind) randomAccess() bool {
	return k == kindZip || k == kindOLE || k == kind7z || k == kindISO || k == kindCab
}

var (
	magicOLE  = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}
	magic7z   = []byte{'7', 'z', 0xBC, 0xAF, 0x27, 0x1C}
	magicRar  = []byte("Rar!\x1a\x07")
	magicTNEF = []byte{0x78, 0x9F, 0x3E, 0x22} // 0x223E9F78 little endian
	magicXz   = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	magicZstd = []byte{0x28, 0xB5, 0x2F, 0xFD}
	magicCab  = []byte("MSCF\x00\x00\x00\x00")
)

// sniffKind looks at the first bytes of a body (at least 512 when the body
// is that long) and names the container format they announce.
func sniffKind(head []byte) kind {
	switch {
	case len(head) >= 4 && head[0] == 'P' && head[1] == 'K' &&
		(head[2] == 3 && head[3] == 4 || head[2] == 5 && head[3] == 6 || head[2] == 7 && head[3] == 8):
		return kindZip
	case bytes.HasPrefix(head, magicOLE):
		return kindOLE
	case len(head) >= 2 && head[0] == 0x1F && head[1] == 0x8B:
		return kindGzip
	case bytes.HasPrefix(head, magicRar):
		return kindRar
	case bytes.HasPrefix(head, magic7z):
		return kind7z
	case bytes.HasPrefix(head, magicTNEF):
		return kindTNEF
	case bytes.HasPrefix(head, magicXz):
		return kindXz
	case bytes.HasPrefix(head, magicZstd):
		return kindZstd
	case bytes.HasPrefix(head, magicCab):
		return kindCab
	case len(head) >= 10 && head[0] == 'B' && head[1] == 'Z' && head[2] == 'h' && head[3] >= '1' && head[3] <= '9' &&
		(string(head[4:10]) == "1AY&SY" || string(head[4:10]) == "\x17rE8P\x90"):
		return kindBzip2
	case isTar(head):
		return kindTar
	}
	return kindNone
}

// isTar recognises a POSIX/GNU tar header ("ustar" magic) or a v7 header
// whose checksum is right.
func isTar(head []byte) bool {
	if len(head) < 512 {
		return false
	}
	if bytes.Equal(head[257:262], []byte("ustar")) {
		return true
	}
	return tarChecksumOK(head[:512])
}

func tarChecksumOK(h []byte) bool {
	field := bytes.TrimRight(bytes.TrimLeft(h[148:156], " \x00"), " \x00")
	if len(field) == 0 {
		return false
	}
	var want int64
	for _, c := range field {
		if c < '0' || c > '7' {
			return false
		}
		want = want*8 + int64(c-'0')
	}
	var sum int64
	nonzero := false
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		} else if c != 0 {
			nonzero = true
		}
		sum += int64(c)
	}
	return nonzero && sum == want
}

// isExecutable reports whether the first bytes are a native executable or
// object: PE/DOS ("MZ", and "ZM" which DOS loaders accept too), ELF, or
// Mach-O (32/64 bit, either byte order, and universal "fat" binaries).
func isExecutable(head []byte) bool {
	if len(head) < 4 {
		return len(head) >= 2 && (head[0] == 'M' && head[1] == 'Z' || head[0] == 'Z' && head[1] == 'M')
	}
	if head[0] == 'M' && head[1] == 'Z' || head[0] == 'Z' && head[1] == 'M' {
		return true
	}
	switch binary.BigEndian.Uint32(head) {
	case 0x7F454C46, // ELF
		0xFEEDFACE, 0xFEEDFACF, 0xCEFAEDFE, 0xCFFAEDFE: // Mach-O
		return true
	case 0xCAFEBABE, 0xCAFEBABF, 0xBEBAFECA:
		// Universal binary; 0xCAFEBABE is also a Java class file, whose
		// next word (minor, major version) is at least 45. A fat header's
		// next word is the number of architectures, small.
		if len(head) < 8 {
			return true
		}
		n := binary.BigEndian.Uint32(head[4:])
		if head[0] == 0xBE {
			n = binary.LittleEndian.Uint32(head[4:])
		}
		return n > 0 && n < 45
	}
	return false
}

// isTNEFHint reports whether the declared name or type says TNEF.
func isTNEFHint(o *Options) bool {
	return strings.EqualFold(strings.TrimRight(o.Name, ". "), "winmail.dat") ||
		o.Declared == "application/ms-tnef" || o.Declared == "application/vnd.ms-tnef"
}
