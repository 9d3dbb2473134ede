package sink_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/medallionlake/medallion/config"
	"github.com/medallionlake/medallion/generate"
	"github.com/medallionlake/medallion/medtype"
	"github.com/medallionlake/medallion/sink"
	"github.com/medallionlake/medallion/storage/filesystem"
)

// TestTLSAndSCRAM: a broker that only speaks TLS and requires SASL
// SCRAM-SHA-256. The sink, configured from a medallion.yaml whose password
// is an environment variable and whose CA file is relative to it, sinks
// every message and commits; a wrong password fails with an error that
// says so, and writes nothing.
func TestTLSAndSCRAM(t *testing.T) {
	dir := t.TempDir()
	serverTLS := selfSignedTLS(t, filepath.Join(dir, "ca.pem"))
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "raw-events"), kfake.TLS(serverTLS),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "medallion", "s3cret-pw"),
		kfake.GroupMinSessionTimeout(100*time.Millisecond))
	must(t, err)
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()

	cfgPath := filepath.Join(dir, "medallion.yaml")
	must(t, os.WriteFile(cfgPath, []byte(`kafka:
  brokers: [`+brokers[0]+`]
  tls:
    enabled: true
    ca_file: ca.pem
  sasl:
    mechanism: scram-sha-256
    username: medallion
    password: ${TEST_KAFKA_PASSWORD}
`), 0o644))
	load := func(password string) config.Kafka {
		t.Setenv("TEST_KAFKA_PASSWORD", password)
		cfg, err := config.Load(cfgPath)
		must(t, err)
		return cfg.Kafka
	}

	good, err := sink.Dialer(load("s3cret-pw"))
	must(t, err)
	msgs, err := generate.Generate(generate.Options{Seed: 3, Start: medtype.MustDate("2024-01-15"), Days: 1, EventsPerDay: 3000, Domains: []string{"events"}})
	must(t, err)
	for i := range msgs {
		msgs[i].Partition %= 2
	}
	produceVia(t, brokers, sink.Transport(good), msgs)

	run := func(d sink.Options) (*sink.Sink, error) {
		s, err := sink.New(d)
		must(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return s, s.Run(ctx)
	}
	b, err := filesystem.New(filesystem.Config{Root: filepath.Join(dir, "lakehouse")})
	must(t, err)

	// A wrong password: a clear error, nothing written.
	bad, err := sink.Dialer(load("wrong"))
	must(t, err)
	o := options(brokers, b, domainsFor(t, "events"))
	o.Dialer, o.UntilEnd = bad, true
	// The broker closes the connection, as a restarting one does: the sink
	// retries for sink.topic_wait before it gives up.
	o.Sink.TopicWait = 2 * time.Second
	start := time.Now()
	if _, err := run(o); err == nil || !strings.Contains(err.Error(), "over TLS, SASL SCRAM-SHA-256: check kafka.brokers, kafka.tls and kafka.sasl") {
		t.Fatalf("a wrong password: %v, want an error naming the connection's TLS and SASL", err)
	} else if time.Since(start) > 30*time.Second {
		t.Errorf("a wrong password took %s to fail: %v", time.Since(start), err)
	}
	if n := len(bronzeCounts(t, b)); n != 0 {
		t.Fatalf("a failed login wrote %d records", n)
	}

	// The right one: every message in bronze, and the offsets committed
	// (a second run finds nothing to read).
	o.Dialer = good
	s, err := run(o)
	must(t, err)
	total := 0
	for _, n := range bronzeCounts(t, b) {
		total += n
	}
	if total != len(msgs) || s.Stats().Written.Load() != int64(len(msgs)) {
		t.Fatalf("bronze holds %d records, the sink wrote %d, of %d messages", total, s.Stats().Written.Load(), len(msgs))
	}
	s, err = run(o)
	must(t, err)
	if n := s.Stats().Consumed.Load(); n != 0 {
		t.Fatalf("a second run consumed %d messages: the first did not commit", n)
	}
}

// selfSignedTLS makes a CA and a server certificate for 127.0.0.1, writes
// the CA to caFile and returns the server's TLS config.
func selfSignedTLS(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		return k
	}
	caKey, srvKey := key(), key()
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "medallion test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	must(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	must(t, err)
	srv := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	must(t, err)
	must(t, os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644))
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}, MinVersion: tls.VersionTLS12}
}
