package policies

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// outsideDoc matches a citation of a document outside the repository:
	// the workspace's shared notes, its style guide, a web page. Addresses
	// of our own endpoints and example domains are not citations.
	outsideDoc = regexp.MustCompile(`shared/[A-Za-z_]+\.md|\bSTYLE\b|[Hh]ouse\s+style|https?://[^\s/]*\.[a-z]{2,}\S*`)
	ownURL     = regexp.MustCompile(`^https?://(127\.0\.0\.1|localhost|\[::1\]|[^/\s]*example\.(org|com|net))`)
	rfcRef     = regexp.MustCompile(`RFC ?(\d{3,4})`)
)

// TestCommentsCiteTheRepository: comments cite docs/ (docs/DEVELOPING.md
// says so), and every RFC a comment names is in docs/DEVELOPING.md's list.
func TestCommentsCiteTheRepository(t *testing.T) {
	dev, err := os.ReadFile("../docs/DEVELOPING.md")
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\| (\d{3,4}) \|`).FindAllStringSubmatch(string(dev), -1) {
		listed[m[1]] = true
	}
	files := 0
	filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != ".." || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, parser.ParseComments)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		files++
		for _, g := range f.Comments {
			for _, c := range g.List {
				for _, m := range outsideDoc.FindAllString(c.Text, -1) {
					if !ownURL.MatchString(m) {
						t.Errorf("%s: comment cites %q outside the repository: cite docs/ instead", fset.Position(c.Pos()), m)
					}
				}
				for _, m := range rfcRef.FindAllStringSubmatch(c.Text, -1) {
					if !listed[m[1]] {
						t.Errorf("%s: RFC %s is not in docs/DEVELOPING.md's list of standards", fset.Position(c.Pos()), m[1])
					}
				}
			}
		}
		return nil
	})
	if files < 100 {
		t.Fatalf("only %d Go files found: is the test run from policies/?", files)
	}
}
