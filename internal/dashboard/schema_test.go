package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hap-monitor/hap-monitor/internal/testbed"
)

// The npm packages the schema check compiles with: Grafana's schema
// types and the TypeScript compiler.
const (
	GrafanaSchemaVersion = "13.2.3"
	TypeScriptVersion    = "5.9.3"
)

// schemaCheck is the TypeScript the dashboard is checked as: the file's
// JSON written as object literals of Grafana's types, the dashboard's and
// each panel's options and field config, so that tsc refuses a key the
// schema does not know, a value of the wrong type and a missing required
// option. Loose turns the schema's string enums into their values' union,
// as JSON can only hold the values.
const schemaCheck = `import type { Dashboard } from '@grafana/schema';
import type * as timeseries from '@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen';
import type * as stat from '@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen';

type Loose<T> = T extends string ? ` + "`${T}`" + ` : T extends object ? { [K in keyof T]: Loose<T[K]> } : T;

export const dashboard: Loose<Dashboard> = %s;
%s`

// checkSchema writes dashboard (the file's JSON) as schemaCheck and
// compiles it with tsc; it returns tsc's output and whether it passed.
func checkSchema(ctx context.Context, t *testing.T, modules string, dashboard []byte) (string, bool) {
	t.Helper()
	var d struct {
		Panels []struct {
			Type        string          `json:"type"`
			Title       string          `json:"title"`
			Options     json.RawMessage `json:"options"`
			FieldConfig struct {
				Defaults struct {
					Custom json.RawMessage `json:"custom"`
				} `json:"defaults"`
			} `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dashboard, &d); err != nil {
		t.Fatal(err)
	}
	var panels strings.Builder
	for i, p := range d.Panels {
		switch p.Type {
		case "row":
			continue
		case "timeseries":
			fmt.Fprintf(&panels, "// %s\nexport const options%d: Loose<timeseries.Options> = %s;\n", p.Title, i, p.Options)
			fmt.Fprintf(&panels, "export const custom%d: Loose<timeseries.FieldConfig> = %s;\n", i, p.FieldConfig.Defaults.Custom)
		case "stat":
			fmt.Fprintf(&panels, "// %s\nexport const options%d: Loose<stat.Options> = %s;\n", p.Title, i, p.Options)
		default:
			t.Fatalf("panel %q: type %q has no schema check", p.Title, p.Type)
		}
	}
	dir := t.TempDir()
	files := map[string]string{
		"check.ts": fmt.Sprintf(schemaCheck, dashboard, panels.String()),
		"tsconfig.json": `{"compilerOptions": {"strict": true, "noEmit": true, "module": "nodenext",
  "moduleResolution": "nodenext", "target": "es2022", "skipLibCheck": true, "types": []},
  "files": ["check.ts"]}`,
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(modules, filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", filepath.Join(modules, "typescript", "bin", "tsc"), "-p", dir)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("tsc: %v", err)
	}
	return strings.TrimSpace(string(out)), err == nil
}

// TestSchema compiles the dashboard against the types of Grafana's
// schema package, and checks that the same compile refuses a dashboard
// with a wrong key, a wrong type or a wrong option value.
func TestSchema(t *testing.T) {
	testbed.NeedsPeer(t, "Node.js and npm (@grafana/schema and TypeScript from the npm registry)")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	modules, err := testbed.InstallNPM(ctx, "grafana-schema-"+GrafanaSchemaVersion, "typescript/bin/tsc",
		"@grafana/schema@"+GrafanaSchemaVersion, "typescript@"+TypeScriptVersion)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(File)
	if err != nil {
		t.Fatal(err)
	}
	if out, ok := checkSchema(ctx, t, modules, data); !ok {
		t.Fatalf("%s does not match Grafana's schema (@grafana/schema %s):\n%s", File, GrafanaSchemaVersion, out)
	}

	for _, bad := range []struct{ name, from, to, want string }{
		{"a key the schema lacks", `"gridPos": {`, `"gridpos": {`, "gridpos"},
		{"a number as a string", `"schemaVersion": 41`, `"schemaVersion": "41"`, "Type 'string' is not assignable to type 'number'"},
		{"an option value no panel knows", `"drawStyle": "line"`, `"drawStyle": "lines"`, `Type '"lines"' is not assignable`},
		{"a required option left out", `"showPercentChange": false,`, ``, "showPercentChange"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			if !strings.Contains(string(data), bad.from) {
				t.Fatalf("%s lacks %s", File, bad.from)
			}
			out, ok := checkSchema(ctx, t, modules, []byte(strings.Replace(string(data), bad.from, bad.to, 1)))
			if ok || !strings.Contains(out, bad.want) {
				t.Errorf("with %s -> %s, tsc passed=%v, want an error with %s:\n%s", bad.from, bad.to, ok, bad.want, out)
			}
		})
	}
}
