package cu

import (
	"regexp"
	"testing"
)

func TestEREQuote(t *testing.T) {
	for _, s := range []string{"/var/run/a.pid", "/x/[y]/(z)+*?{1}|^$\\", "plain"} {
		re := regexp.MustCompile("^" + ereQuote(s) + "$")
		if !re.MatchString(s) || re.MatchString(s+"x") {
			t.Errorf("%q quoted as %q", s, ereQuote(s))
		}
	}
	if regexp.MustCompile(ereQuote("a.pid")).MatchString("aXpid") {
		t.Fatal("dot not escaped")
	}
}
