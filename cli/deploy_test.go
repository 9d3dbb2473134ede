package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/medallionlake/medallion/cli"
	"github.com/medallionlake/medallion/config"
)

// No Docker engine runs here, so the compose file and manifests are checked
// as data: valid YAML, the expected structure, and every medallion command
// they invoke exists. The Kubernetes ConfigMap's medallion.yaml must load.
func TestDeploymentFiles(t *testing.T) {
	data, err := os.ReadFile("../docker-compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       any               `yaml:"build"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
		Configs map[string]struct {
			Content string `yaml:"content"`
		} `yaml:"configs"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatalf("docker-compose.yaml: %v", err)
	}
	for _, want := range []string{"postgres", "s3", "kafka", "sink", "scheduler", "worker", "serve", "extract", "extract-snapshot", "medallion"} {
		if _, ok := compose.Services[want]; !ok {
			t.Errorf("docker-compose.yaml has no %s service", want)
		}
	}
	for name, s := range compose.Services {
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if strings.HasPrefix(s.Image, "medallion:") {
			checkCommand(t, "compose service "+name, s.Command)
			for k := range s.Environment {
				if !strings.HasPrefix(k, config.EnvPrefix) {
					t.Errorf("service %s sets %s, which medallion does not read", name, k)
				}
			}
		}
	}
	// The extract services' configuration file loads, with its built-in
	// extracts filled in.
	p := filepath.Join(t.TempDir(), "extract.yaml")
	if err := os.WriteFile(p, []byte(compose.Configs["extract-sources"].Content), 0o644); err != nil {
		t.Fatal(err)
	}
	if cfg, err := config.Load(p); err != nil || cfg.Sources["app"].Extracts["orders"].Table != "orders" {
		t.Errorf("the compose extract-sources config does not load: %v", err)
	}
	files, _ := filepath.Glob("../deploy/kubernetes/*.yaml")
	if len(files) < 3 {
		t.Fatalf("deploy/kubernetes has %d manifests", len(files))
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(raw, &m); err != nil || m["apiVersion"] == nil || m["kind"] == nil {
			t.Errorf("%s: not a Kubernetes manifest (%v)", f, err)
		}
		if strings.Contains(string(raw), "args: [") {
			for _, line := range strings.Split(string(raw), "\n") {
				if i := strings.Index(line, "args: ["); i >= 0 {
					var args []string
					if err := yaml.Unmarshal([]byte(line[i+len("args: "):]), &args); err != nil {
						t.Errorf("%s: %v", f, err)
					}
					checkCommand(t, f, args)
				}
			}
		}
		if m["kind"] == "ConfigMap" {
			cm := m["data"].(map[string]any)["medallion.yaml"].(string)
			p := filepath.Join(t.TempDir(), "medallion.yaml")
			if err := os.WriteFile(p, []byte(strings.ReplaceAll(cm, "domains_dir: /etc/medallion/domains", "domains_dir: "+emptyDomainsFolder(t))), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Setenv("PGPASSWORD", "x")
			t.Setenv("ANALYST_PASSWORD", "x")
			t.Setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/x")
			t.Setenv("APP_DB_PASSWORD", "x")
			if _, err := config.Load(p); err != nil {
				t.Errorf("%s: its medallion.yaml does not load: %v", f, err)
			}
		}
	}
}

func emptyDomainsFolder(t *testing.T) string {
	return t.TempDir() // the image's folder for a deployment's own domain files
}

// checkCommand runs `medallion <command> --help`, which fails for an
// unknown command or flag.
func checkCommand(t *testing.T, where string, args []string) {
	t.Helper()
	if len(args) == 0 {
		t.Errorf("%s runs no command", where)
		return
	}
	var cmd []string
	for _, a := range args {
		if a == "--config" || strings.HasPrefix(a, "/etc/") {
			continue
		}
		cmd = append(cmd, a)
	}
	if r := run(t, append(cmd, "--help")...); r.code != cli.ExitOK {
		t.Errorf("%s: medallion %v is not a valid command: %s", where, cmd, r.stderr)
	}
}
