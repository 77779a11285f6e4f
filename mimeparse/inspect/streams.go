package inspect

import (
	"archive/tar"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"io"
	"path"
	"strings"

	"github.com/bodgit/sevenzip"
	"github.com/nwaples/rardecode/v2"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// compressed lists a single-file compressed stream (gzip, bzip2, xz,
// zstd). A compressed tar is listed as the tar (its members at depth+1);
// anything else is one member, named after the gzip header's name or the
// declared name without its last extension.
func (w *walker) compressed(k kind, r *io.SectionReader, depth int) {
	var dr io.Reader
	var name string
	switch k {
	case kindGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			w.corrupt()
			return
		}
		defer zr.Close()
		dr, name = zr, zr.Name
	case kindBzip2:
		dr = bzip2.NewReader(r)
	case kindXz:
		// The dictionaries are checked from the index first: the reader
		// allocates what each block header asks for (dict.go).
		if err := xzCheckDict(r, w.opts.ArchiveDict); err != nil {
			if errors.Is(err, errDictTooLarge) {
				w.res.addDefect(DefectLimitArchiveDict)
			} else {
				w.corrupt()
			}
			return
		}
		xr, err := xz.ReaderConfig{DictCap: lzma.MinDictCap}.NewReader(r)
		if err != nil {
			w.corrupt()
			return
		}
		dr = xr
	case kindZstd:
		zr, err := newZstd(r, w.opts.ArchiveDict)
		if err != nil {
			w.corrupt()
			return
		}
		defer zr.Close()
		dr = &zstdLimitReader{zr, w}
	}
	br := bufio.NewReaderSize(w.limited(dr), 4096)
	head, _ := br.Peek(512)
	if isTar(head) {
		w.tar(br, depth)
		return
	}
	if name == "" && depth == 0 {
		name = strings.TrimSuffix(w.opts.Name, path.Ext(w.opts.Name))
	}
	cr := &countReader{r: br}
	e := Entry{Name: name, Ext: extOf(name), Depth: depth + 1, Size: -1}
	// The size is only known once decompressed: sniff, then count the rest
	// within the budget.
	last := len(w.res.Archive)
	ok, err := w.member(&e, cr)
	if err != nil {
		w.corrupt()
	}
	if !ok {
		return
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		w.corrupt()
	}
	if last < len(w.res.Archive) && w.left() > 0 {
		w.res.Archive[last].Size = cr.n
	}
}

// zstdLimitReader turns the decoder's "window too large" into
// DefectLimitArchiveDict (and a clean end), other errors stay errors.
type zstdLimitReader struct {
	r io.Reader
	w *walker
}

func (z *zstdLimitReader) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	if err != nil && isZstdLimit(err) {
		z.w.res.addDefect(DefectLimitArchiveDict)
		return n, io.EOF
	}
	return n, err
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// tar lists a tar stream.
func (w *walker) tar(r io.Reader, depth int) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			w.corrupt()
			return
		}
		e := Entry{Name: h.Name, Ext: extOf(h.Name), Size: h.Size, Depth: depth + 1}
		var ok bool
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA || h.Typeflag == tar.TypeGNUSparse {
			var err error
			if ok, err = w.member(&e, w.limited(tr)); err != nil {
				w.corrupt()
			}
		} else {
			ok = w.add(e)
		}
		if !ok {
			return
		}
	}
}

// rar lists a RAR (1.5 to 7) archive. Encrypted headers hide every name:
// Encrypted is set and DefectArchiveEncryptedHeaders says why nothing is
// listed.
func (w *walker) rar(r io.Reader, depth int) {
	// rardecode checks each entry's window (from its file header, cut to
	// the entry's size when not solid) against this before allocating it.
	rr, err := rardecode.NewReader(r, rardecode.MaxDictionarySize(w.opts.ArchiveDict))
	if err != nil {
		w.rarErr(err)
		return
	}
	for {
		h, err := rr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			w.rarErr(err)
			return
		}
		e := Entry{Name: h.Name, Ext: extOf(h.Name), Size: h.UnPackedSize, Encrypted: h.Encrypted || h.HeaderEncrypted, Depth: depth + 1}
		var ok bool
		if h.IsDir || e.Encrypted {
			ok = w.add(e)
		} else {
			var err error
			if ok, err = w.member(&e, w.limited(rr)); err != nil {
				if errors.Is(err, rardecode.ErrDictionaryTooLarge) {
					// Window past limits.archive_dict: listed, not sniffed.
					w.res.addDefect(DefectLimitArchiveDict)
				} else {
					w.rarErr(err)
				}
			}
		}
		if !ok {
			return
		}
	}
}

func (w *walker) rarErr(err error) {
	switch {
	case errors.Is(err, rardecode.ErrArchiveEncrypted):
		w.res.Encrypted = true
		w.res.addDefect(DefectArchiveEncryptedHeaders)
	case errors.Is(err, rardecode.ErrDictionaryTooLarge):
		// Next refuses an entry whose window is past limits.archive_dict
		// before allocating it; the rest of the archive is not listed.
		w.res.addDefect(DefectLimitArchiveDict)
	case errors.Is(err, rardecode.ErrMultiVolume):
		w.res.addDefect(DefectArchiveUnsupported)
	default:
		w.corrupt()
	}
}

// sevenZipMaxStream: entries of a 7z stream (solid block) declaring more
// decompressed bytes than this are listed but not sniffed, because the
// decoders (LZMA, PPMd) allocate memory from the sizes the archive claims.
const sevenZipMaxStream = 32 << 20

// sevenZip lists a 7z archive. Opening an entry of a solid block
// decompresses the entries before it: that is charged to the budget first,
// and entries past the budget are listed without a sniffed type.
func (w *walker) sevenZip(src readerAtSize, depth int) {
	// The reader allocates what the header's counts ask for before it
	// reads them: walk the header first (sevenzip_header.go).
	switch sevenZipHeaderCheck(src, w.opts.ArchiveDict, w.opts.ArchiveDict) {
	case sevenZipTooBig:
		w.res.addDefect(DefectLimitArchiveDict)
		return
	case sevenZipCorrupt:
		w.corrupt()
		return
	}
	var zr *sevenzip.Reader
	var err error
	if sevenZipCall(w.opts.ArchiveDict, func() { zr, err = sevenzip.NewReader(src, src.Size()) }) {
		// The header itself is compressed with a decoder that asks too much.
		w.res.addDefect(DefectLimitArchiveDict)
		return
	}
	if err != nil {
		var re *sevenzip.ReadError
		if errors.As(err, &re) && re.Encrypted || strings.Contains(err.Error(), "password") {
			w.res.Encrypted = true
			w.res.addDefect(DefectArchiveEncryptedHeaders)
			return
		}
		w.corrupt()
		return
	}
	before := map[int]int64{} // bytes of each solid stream before the next entry
	total := map[int]int64{}  // bytes of each stream, as the file headers say
	for _, f := range zr.File {
		total[f.Stream] += int64(f.UncompressedSize)
	}
	for _, f := range zr.File {
		e := Entry{Name: f.Name, Ext: extOf(f.Name), Size: int64(f.UncompressedSize), Depth: depth + 1}
		skip := before[f.Stream]
		before[f.Stream] = skip + int64(f.UncompressedSize)
		if f.FileInfo().IsDir() || f.UncompressedSize == 0 {
			if !w.add(e) {
				return
			}
			continue
		}
		if skip >= w.left() || total[f.Stream] > sevenZipMaxStream || total[f.Stream] < 0 {
			// Decoders size their dictionaries from the stream size: a
			// stream claiming more than sevenZipMaxStream is not opened.
			if !w.spent() {
				w.res.addDefect(DefectLimitArchiveBytes)
			}
			if !w.add(e) {
				return
			}
			continue
		}
		// Open decompresses the entries before f in its solid stream.
		w.charge(skip)
		var rc io.ReadCloser
		if sevenZipCall(w.opts.ArchiveDict, func() { rc, err = f.Open() }) {
			w.res.addDefect(DefectLimitArchiveDict)
			if rc != nil {
				rc.Close()
			}
			if !w.add(e) {
				return
			}
			continue
		}
		if err != nil {
			w.res.addDefect(DefectArchiveUnsupported)
			if !w.add(e) {
				return
			}
			continue
		}
		pr := &errPeekReader{r: rc}
		ok, _ := w.member(&e, w.limited(pr))
		rc.Close()
		if !ok {
			return
		}
		if pr.err != nil {
			var re *sevenzip.ReadError
			if errors.As(pr.err, &re) && re.Encrypted || strings.Contains(pr.err.Error(), "password") {
				w.res.Archive[len(w.res.Archive)-1].Encrypted = true
				w.res.Archive[len(w.res.Archive)-1].DetectedType = ""
				w.res.Encrypted = true
			} else if isZstdLimit(pr.err) {
				w.res.addDefect(DefectLimitArchiveDict)
			} else if pr.err != io.EOF {
				w.corrupt()
			}
		}
	}
}

// errPeekReader remembers the first error of r.
type errPeekReader struct {
	r   io.Reader
	err error
}

func (e *errPeekReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}
