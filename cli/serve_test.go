package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medallionlake/medallion/cli"
)

// TestServeConfigErrors: medallion serve refuses, before it listens, a
// configuration it cannot serve safely, with exit 2 and the file and key
// named: no user, a certificate that does not load, and an address other
// machines reach without TLS.
func TestServeConfigErrors(t *testing.T) {
	base := project(t, "sqlite://"+filepath.Join(t.TempDir(), "meta.db"))
	for _, c := range []struct{ serve, want string }{
		{"serve:\n  addr: 127.0.0.1:0\n", "serve.users is empty"},
		{"serve:\n  addr: 127.0.0.1:0\n  users: [{name: a, password: b}]\n  tls: {cert_file: /no/such.crt, key_file: /no/such.key}\n",
			"serve.tls.cert_file /no/such.crt"},
		{"serve:\n  addr: 0.0.0.0:0\n  http_addr: \"\"\n  users: [{name: a, password: b}]\n", "set serve.tls.cert_file and serve.tls.key_file, or serve.allow_plaintext: true"},
	} {
		raw, err := os.ReadFile(base)
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "medallion.yaml")
		if err := os.WriteFile(cfg, append(raw, c.serve...), 0o644); err != nil {
			t.Fatal(err)
		}
		r := run(t, "serve", "--config", cfg)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, cfg) || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 naming %s and %q", c.serve, r.code, r.stderr, cfg, c.want)
		}
	}
}
