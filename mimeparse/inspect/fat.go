package inspect

import (
	"bytes"
	"encoding/binary"
	"io"
	"strings"
	"unicode/utf16"
)

// Disk images: Windows mounts .img and .vhd(x) with a double click and
// shows the files inside as a drive, past filters that do not look. Read
// here: a raw FAT12/16/32 volume (a floppy-style .img), an MBR disk whose
// partitions are FAT, and a fixed VHD (a raw disk followed by a 512-byte
// "conectix" footer: the same as MBR). A dynamic or differencing VHD (the
// footer copy at offset 0) and VHDX are not read: defect
// archive-unsupported, like any archive variant not listed. ISO 9660
// images are iso.go's.
//
// The FAT reader is small and bounded: directories visited (fatMaxDirs),
// depth (fatMaxDepth), cluster chains cut at the volume's cluster count
// and at the file size, loops cut.

const (
	fatMaxDirs  = 4096
	fatMaxDepth = 16
)

// isFATBoot reports a FAT boot sector: a jump, a sane BPB, 0x55AA.
func isFATBoot(h []byte) bool {
	if len(h) < 512 || h[510] != 0x55 || h[511] != 0xAA || !(h[0] == 0xEB || h[0] == 0xE9) {
		return false
	}
	bps := binary.LittleEndian.Uint16(h[11:])
	spc := h[13]
	return (bps == 512 || bps == 1024 || bps == 2048 || bps == 4096) && spc != 0 && spc&(spc-1) == 0 &&
		h[16] != 0 && binary.LittleEndian.Uint16(h[14:]) != 0
}

// isMBRDisk reports an MBR whose partition table holds a FAT partition.
func isMBRDisk(h []byte) bool {
	if len(h) < 512 || h[510] != 0x55 || h[511] != 0xAA || isFATBoot(h) {
		return false
	}
	for i := 0; i < 4; i++ {
		e := h[446+16*i:]
		if isFATPartType(e[4]) && e[0]&0x7F == 0 && binary.LittleEndian.Uint32(e[8:]) > 0 {
			return true
		}
	}
	return false
}

func isFATPartType(t byte) bool {
	switch t {
	case 0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E:
		return true
	}
	return false
}

func (w *walker) disk(src readerAtSize, out *carried, emb func(string, io.Reader, int64) bool) {
	head := window(src, 0, 512)
	switch {
	case bytes.HasPrefix(head, magicVHD), bytes.HasPrefix(head, magicVHDX):
		w.res.addDefect(DefectArchiveUnsupported)
	case isFATBoot(head):
		w.fat(io.NewSectionReader(src, 0, src.Size()), emb)
	case isMBRDisk(head):
		for i := 0; i < 4; i++ {
			e := head[446+16*i:]
			start := int64(binary.LittleEndian.Uint32(e[8:])) * 512
			n := int64(binary.LittleEndian.Uint32(e[12:])) * 512
			if !isFATPartType(e[4]) || start >= src.Size() {
				continue
			}
			n = min(n, src.Size()-start)
			if !w.fat(io.NewSectionReader(src, start, n), emb) {
				return
			}
		}
	}
}

type fatVol struct {
	r                 *io.SectionReader
	bps, spc          int64
	fatStart, fatSize int64 // bytes
	rootStart         int64 // FAT12/16: the fixed root directory
	rootEntries       int64
	dataStart         int64
	clusters          int64
	bits              int // 12, 16 or 32
	rootCluster       uint32
}

func (w *walker) fat(r *io.SectionReader, emb func(string, io.Reader, int64) bool) bool {
	b := window(r, 0, 512)
	if !isFATBoot(b) {
		w.res.addDefect(DefectCarrierCorrupt)
		return true
	}
	le := binary.LittleEndian
	v := &fatVol{r: r, bps: int64(le.Uint16(b[11:])), spc: int64(b[13])}
	reserved := int64(le.Uint16(b[14:]))
	nfats := int64(b[16])
	v.rootEntries = int64(le.Uint16(b[17:]))
	total := int64(le.Uint16(b[19:]))
	if total == 0 {
		total = int64(le.Uint32(b[32:]))
	}
	fatSecs := int64(le.Uint16(b[22:]))
	if fatSecs == 0 {
		fatSecs = int64(le.Uint32(b[36:]))
		v.rootCluster = le.Uint32(b[44:])
	}
	rootSecs := (v.rootEntries*32 + v.bps - 1) / v.bps
	v.fatStart = reserved * v.bps
	v.fatSize = fatSecs * v.bps
	v.rootStart = v.fatStart + nfats*v.fatSize
	v.dataStart = v.rootStart + rootSecs*v.bps
	dataSecs := total - (reserved + nfats*fatSecs + rootSecs)
	if dataSecs <= 0 || fatSecs == 0 {
		w.res.addDefect(DefectCarrierCorrupt)
		return true
	}
	v.clusters = dataSecs / v.spc
	switch {
	case v.clusters < 4085:
		v.bits = 12
	case v.clusters < 65525:
		v.bits = 16
	default:
		v.bits = 32
	}
	dirs := 0
	var root []byte
	if v.bits == 32 {
		root = v.readChain(v.rootCluster, 4<<20)
	} else {
		root = window(r, v.rootStart, v.rootEntries*32)
	}
	return w.fatDir(v, root, "", 0, &dirs, emb)
}

// next returns the FAT entry of cluster c.
func (v *fatVol) next(c uint32) uint32 {
	switch v.bits {
	case 12:
		b := window(v.r, v.fatStart+int64(c)*3/2, 2)
		if len(b) < 2 {
			return 0xFFFFFFFF
		}
		x := uint32(binary.LittleEndian.Uint16(b))
		if c&1 == 1 {
			x >>= 4
		}
		x &= 0xFFF
		if x >= 0xFF8 {
			return 0xFFFFFFFF
		}
		return x
	case 16:
		b := window(v.r, v.fatStart+int64(c)*2, 2)
		if len(b) < 2 {
			return 0xFFFFFFFF
		}
		x := uint32(binary.LittleEndian.Uint16(b))
		if x >= 0xFFF8 {
			return 0xFFFFFFFF
		}
		return x
	}
	b := window(v.r, v.fatStart+int64(c)*4, 4)
	if len(b) < 4 {
		return 0xFFFFFFFF
	}
	x := binary.LittleEndian.Uint32(b) & 0x0FFFFFFF
	if x >= 0x0FFFFFF8 {
		return 0xFFFFFFFF
	}
	return x
}

// chain follows a cluster chain for at most n bytes, cut at the cluster
// count (so a loop ends).
func (v *fatVol) chain(c uint32, n int64) []uint32 {
	var out []uint32
	csize := v.bps * v.spc
	for steps := int64(0); c >= 2 && int64(c) < v.clusters+2 && steps <= v.clusters && int64(len(out))*csize < n; steps++ {
		out = append(out, c)
		c = v.next(c)
	}
	return out
}

func (v *fatVol) clusterOff(c uint32) int64 { return v.dataStart + int64(c-2)*v.bps*v.spc }

func (v *fatVol) readChain(c uint32, n int64) []byte {
	var out []byte
	csize := v.bps * v.spc
	for _, cl := range v.chain(c, n) {
		out = append(out, window(v.r, v.clusterOff(cl), min(csize, n-int64(len(out))))...)
	}
	return out
}

// chainReader reads a file's clusters in order.
type chainReader struct {
	v     *fatVol
	chain []uint32
	left  int64
	cur   *io.SectionReader
}

func (c *chainReader) Read(p []byte) (int, error) {
	for {
		if c.left <= 0 {
			return 0, io.EOF
		}
		if c.cur == nil {
			if len(c.chain) == 0 {
				return 0, io.ErrUnexpectedEOF
			}
			csize := c.v.bps * c.v.spc
			c.cur = io.NewSectionReader(c.v.r, c.v.clusterOff(c.chain[0]), min(csize, c.left))
			c.chain = c.chain[1:]
		}
		n, err := c.cur.Read(p[:min(int64(len(p)), c.left)])
		c.left -= int64(n)
		if err == io.EOF {
			c.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		return n, err
	}
}

func (w *walker) fatDir(v *fatVol, b []byte, prefix string, level int, dirs *int, emb func(string, io.Reader, int64) bool) bool {
	if *dirs++; *dirs > fatMaxDirs || level > fatMaxDepth {
		w.res.addDefect(DefectLimitArchiveEntries)
		return false
	}
	le := binary.LittleEndian
	var lfn []uint16
	for i := 0; i+32 <= len(b); i += 32 {
		e := b[i : i+32]
		if e[0] == 0 {
			break
		}
		attr := e[11]
		if e[0] == 0xE5 {
			lfn = nil
			continue
		}
		if attr == 0x0F {
			part := make([]uint16, 0, 13)
			for _, r := range [][2]int{{1, 11}, {14, 26}, {28, 32}} {
				for k := r[0]; k+1 < r[1]; k += 2 {
					part = append(part, le.Uint16(e[k:]))
				}
			}
			if e[0]&0x40 != 0 {
				lfn = nil
			}
			lfn = append(part, lfn...)
			continue
		}
		if attr&0x08 != 0 {
			lfn = nil
			continue
		}
		name := fatLongName(lfn)
		lfn = nil
		if name == "" {
			base := strings.TrimRight(string(e[0:8]), " ")
			ext := strings.TrimRight(string(e[8:11]), " ")
			if base == "." || base == ".." {
				continue
			}
			name = base
			if ext != "" {
				name += "." + ext
			}
		}
		if name == "." || name == ".." {
			continue
		}
		cl := uint32(le.Uint16(e[26:]))
		if v.bits == 32 {
			cl |= uint32(le.Uint16(e[20:])) << 16
		}
		full := prefix + name
		if attr&0x10 != 0 {
			if !w.fatDir(v, v.readChain(cl, 4<<20), full+"/", level+1, dirs, emb) {
				return false
			}
			continue
		}
		size := int64(le.Uint32(e[28:]))
		cr := &chainReader{v: v, chain: v.chain(cl, size), left: size}
		if !emb(full, cr, size) {
			return false
		}
	}
	return true
}

func fatLongName(u []uint16) string {
	for i, c := range u {
		if c == 0 || c == 0xFFFF {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}

// msc reads a Microsoft Management Console file (XML, opened by mmc.exe
// with a double click) for what makes it run code: script URLs, ActiveX,
// command-line tasks (the GrimResource and taskpad techniques).
func (w *walker) msc(src readerAtSize, out *carried) {
	b := bytes.ToLower(window(src, 0, min(src.Size(), 16<<20)))
	for _, s := range []string{"javascript:", "vbscript:", "activexobject", `type="commandline"`, "wscript.", "shell.application", "res://apds.dll", "<script"} {
		if bytes.Contains(b, []byte(s)) {
			out.add(ActiveMSCScript)
			return
		}
	}
}
