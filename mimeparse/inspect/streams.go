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
	"github.com/klauspost/compress/zstd"
	"github.com/nwaples/rardecode/v2"
	"github.com/ulikunitz/xz"
)

// compressed lists a single-file compressed stream (gzip, bzip2, xz,
// zstd). A compressed tar is listed as the tar (its members at depth+1);
// anything else is one member, named after the gzip header's name or the
// declared name without its last extension.
func (w *walker) compressed(k kind, r io.Reader, depth int) {
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
		xr, err := xz.ReaderConfig{DictCap: maxDict}.NewReader(r)
		if err != nil {
			w.corrupt()
			return
		}
		dr = xr
	case kindZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxDict), zstd.WithDecoderMaxMemory(uint64(max(w.bytesLeft, 1))))
		if err != nil {
			w.corrupt()
			return
		}
		defer zr.Close()
		dr = zr
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
	if last < len(w.res.Archive) && w.bytesLeft > 0 {
		w.res.Archive[last].Size = cr.n
	}
}

// maxDict bounds the window/dictionary a decompressor may allocate (xz,
// zstd); a stream asking for more is reported corrupt, not decoded.
const maxDict = 16 << 20

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

// rarMaxDict bounds the decoding window rardecode may allocate to sniff an
// entry (the window of a non-solid entry never exceeds its size).
const rarMaxDict = maxDict

// rar lists a RAR (1.5 to 7) archive. Encrypted headers hide every name:
// Encrypted is set and DefectArchiveEncryptedHeaders says why nothing is
// listed.
func (w *walker) rar(r io.Reader, depth int) {
	rr, err := rardecode.NewReader(r, rardecode.MaxDictionarySize(rarMaxDict))
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
					// Window past rarMaxDict: listed, not sniffed.
					w.res.addDefect(DefectArchiveUnsupported)
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
	zr, err := sevenzip.NewReader(src, src.Size())
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
		if skip >= w.bytesLeft || total[f.Stream] > sevenZipMaxStream || total[f.Stream] < 0 {
			// Decoders size their dictionaries from the stream size: a
			// stream claiming more than sevenZipMaxStream is not opened.
			w.res.addDefect(DefectLimitArchiveBytes)
			if !w.add(e) {
				return
			}
			continue
		}
		w.bytesLeft -= skip
		rc, err := f.Open()
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
