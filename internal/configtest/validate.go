package configtest

import (
	"strings"
	"testing"
)

// Validation checks a config's Validate and its filter's constructor
// against want, the problems expected (one substring per problem, in any
// order). With no problems wanted, both must succeed. Otherwise Validate
// must report exactly len(want) problems, one per line, each containing its
// text, and build must fail with an error starting with prefix (the filter's
// name and a colon).
func Validation(t testing.TB, validate, build func() error, prefix string, want []string) {
	t.Helper()
	err := validate()
	if len(want) == 0 {
		if err != nil {
			t.Fatal(err)
		}
		if err := build(); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err == nil {
		t.Fatal("valid, want an error")
	}
	if got := len(strings.Split(err.Error(), "\n")); got != len(want) {
		t.Errorf("%d problems, want %d: %v", got, len(want), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if err := build(); err == nil || !strings.HasPrefix(err.Error(), prefix) {
		t.Errorf("building: %v, want an error starting %q", err, prefix)
	}
}
