package testenv

import (
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartPushgateway runs the real Prometheus Pushgateway (Debian package
// prometheus-pushgateway) on a free loopback port until the test ends and
// returns its URL.
func StartPushgateway(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-pushgateway")
	if err != nil {
		t.Fatal("testenv: prometheus-pushgateway is not installed (.ci/ensure-clients installs it)")
	}
	addr := FreeAddr(t)
	cmd := exec.Command(bin, "--web.listen-address="+addr, "--persistence.file="+filepath.Join(t.TempDir(), "pushgateway.data"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: the pushgateway at %s did not become ready", url)
		}
	}
}

// Get returns the body of a GET of url (a Pushgateway's /metrics, say).
func Get(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}
