package config

import (
	"fmt"
	"os"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts every environment override: MEDALLION_KAFKA_BROKERS sets
// kafka.brokers, MEDALLION_DUCKDB_MEMORY_LIMIT sets duckdb.memory_limit.
const EnvPrefix = "MEDALLION_"

// applyEnv overrides keys of v from MEDALLION_<PATH> variables. Names are
// derived from the struct's yaml tags, so every key has exactly one variable
// and underscores inside key names are not ambiguous. Lists take
// comma-separated values. It records, for each key it set, the variable name,
// so validation errors point at the environment instead of a file.
func applyEnv(v reflect.Value, path string, envOf map[string]string, errs *Errors) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := yamlName(f)
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		full := joinPath(path, name)
		fv := v.Field(i)
		if fv.Kind() == reflect.Struct && !hasUnmarshaler(fv) {
			applyEnv(fv, full, envOf, errs)
			continue
		}
		if (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && isStructish(fv.Type().Elem()) {
			continue // lists and maps of mappings are file-only
		}
		env := EnvName(full)
		raw, ok := os.LookupEnv(env)
		if !ok {
			continue
		}
		envOf[full] = env
		if err := setFromString(fv, raw); err != nil {
			*errs = append(*errs, &Error{Env: env, Key: full, Msg: fmt.Sprintf("cannot use %q as %s", raw, typeName(fv.Type()))})
		}
	}
}

// EnvName is the environment variable that overrides a dotted key path.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

func setFromString(v reflect.Value, raw string) error {
	switch {
	case v.Kind() == reflect.String:
		v.SetString(raw) // verbatim: yaml would turn "no" into false
		return nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var parts []string
		for _, p := range strings.Split(raw, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts).Convert(v.Type()))
		return nil
	}
	fresh := reflect.New(v.Type())
	if err := yaml.Unmarshal([]byte(raw), fresh.Interface()); err != nil {
		return err
	}
	v.Set(fresh.Elem())
	return nil
}
