package policies_test

import (
	"os"
	"strings"
	"testing"

	"mailgate/mimeparse/inspect"
)

// TestActiveVocabularyDocumented: every value of Part.Active has its row in
// docs/policy.md's table.
func TestActiveVocabularyDocumented(t *testing.T) {
	doc, err := os.ReadFile(policyDoc)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range inspect.AllActive {
		if !strings.Contains(string(doc), "| `"+a+"` |") {
			t.Errorf("%s: Active value %q is not documented", policyDoc, a)
		}
	}
}
