package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// decoder decodes one YAML document into a struct strictly: unknown and
// duplicate keys are errors, and every error carries the file, line and full
// key path. yaml.v3's KnownFields gives only a line and a Go type name, which
// tells a user too little, so we walk the node tree ourselves and let yaml.v3
// decode the leaves.
type decoder struct {
	file  string
	errs  Errors
	lines map[string]int // key path -> line, for validation errors
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, lines: map[string]int{}}
}

func (d *decoder) fail(line int, key, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// decodeFile parses data and decodes it into out (a pointer to a struct that
// already holds the defaults; keys absent from the file keep them).
func (d *decoder) decodeFile(data []byte, out any) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		d.fail(yamlErrLine(err), "", "invalid YAML: %s", stripYAMLPrefix(err))
		return
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return // empty file: all defaults
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return
	}
	d.decode(root, reflect.ValueOf(out).Elem(), "")
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		d.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" && v.Type() == reflect.TypeFor[[]string]() {
		// A list of one may be written as its item (key: id); the item is
		// interpolated once, as a list's items are.
		n = &yaml.Node{Kind: yaml.SequenceNode, Line: n.Line, Content: []*yaml.Node{n}}
	}
	if n.Kind == yaml.ScalarNode {
		if !d.interpolate(n, path) {
			return
		}
	}
	switch {
	case v.Kind() == reflect.Struct && !hasUnmarshaler(v):
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, "expected a mapping of keys, got %s", describe(n))
			return
		}
		d.decodeStruct(n, v, path)
	case v.Kind() == reflect.Map && v.Type().Key().Kind() == reflect.String && isStructish(v.Type().Elem()):
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, "expected a mapping of names, got %s", describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			full := joinPath(path, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.fail(k.Line, full, "duplicate key")
				continue
			}
			d.lines[full] = k.Line
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, full)
			m.SetMapIndex(reflect.ValueOf(k.Value), elem)
		}
		v.Set(m)
	case v.Kind() == reflect.Slice && isStructish(v.Type().Elem()):
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				itemPath := fmt.Sprintf("%s[%d]", path, i)
				d.lines[itemPath] = item.Line
				if item.Kind == yaml.ScalarNode && !d.interpolate(item, itemPath) {
					return
				}
			}
		}
		fresh := reflect.New(v.Type())
		if err := n.Decode(fresh.Interface()); err != nil {
			d.fail(n.Line, path, "%s", leafError(err, n, v.Type()))
			return
		}
		v.Set(fresh.Elem())
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	fields := yamlFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		full := joinPath(path, key)
		if seen[key] {
			d.fail(k.Line, full, "duplicate key")
			continue
		}
		seen[key] = true
		idx, ok := fields[key]
		if !ok {
			d.fail(k.Line, full, "unknown key%s", suggest(key, fields))
			continue
		}
		d.lines[full] = k.Line
		d.decode(val, v.Field(idx), full)
		d.lines[full] = k.Line // the key's line reads better than the value's
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// interpolate replaces ${VAR} and ${VAR:-default} in a scalar. An unset
// variable without a default is an error: a secret that silently became ""
// would surface much later as an authentication failure.
func (d *decoder) interpolate(n *yaml.Node, path string) bool {
	if !strings.Contains(n.Value, "${") {
		return true
	}
	ok := true
	n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if val, set := os.LookupEnv(m[1]); set {
			return val
		}
		if m[2] != "" {
			return m[3]
		}
		d.fail(n.Line, path, "environment variable %s is not set (write ${%s:-default} to allow that)", m[1], m[1])
		ok = false
		return ""
	})
	if ok && n.Tag == "!!str" && n.Style == 0 {
		n.Tag = "" // let yaml re-resolve "${PORT}" -> 8080 as an int
	}
	return ok
}

// yamlFields maps yaml key -> field index for a struct type.
func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := yamlName(f)
		if name == "-" || name == "" {
			continue
		}
		m[name] = i
	}
	return m
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if tag == "" {
		return ""
	}
	return strings.Split(tag, ",")[0]
}

var unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()

func hasUnmarshaler(v reflect.Value) bool {
	return v.CanAddr() && v.Addr().Type().Implements(unmarshalerType)
}

func isStructish(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && !reflect.PointerTo(t).Implements(unmarshalerType)
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return strconv.Quote(n.Value)
	}
}

func leafError(err error, n *yaml.Node, t reflect.Type) string {
	if n.Kind == yaml.ScalarNode {
		return fmt.Sprintf("cannot use %q as %s", n.Value, typeName(t))
	}
	return fmt.Sprintf("expected %s, got %s", typeName(t), describe(n))
}

func typeName(t reflect.Type) string {
	switch t.String() {
	case "time.Duration":
		return "a duration (e.g. 90s, 10m, 1h)"
	case "config.Duration":
		return "a duration (e.g. 90s, 1h, 7d)"
	case "config.ByteSize":
		return "a size (e.g. 64MiB, 1GB)"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(typeName(t.Elem()), "a ")
	}
	return t.String()
}

func suggest(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for k := range fields {
		if dist := levenshtein(key, k); dist < bestDist || (dist == bestDist && k < best) {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

var yamlLine = regexp.MustCompile(`line (\d+):? ?`)

func yamlErrLine(err error) int {
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func stripYAMLPrefix(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	return yamlLine.ReplaceAllString(s, "")
}
