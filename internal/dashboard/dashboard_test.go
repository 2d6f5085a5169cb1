package dashboard

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite dashboards/graphite.json from the panel table")

// File is the dashboard users import, relative to this package.
var File = filepath.Join("..", "..", "dashboards", "graphite.json")

func TestFileIsBuilt(t *testing.T) {
	built, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(File, built, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	onDisk, err := os.ReadFile(File)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, built) {
		t.Errorf("%s differs from what Build writes: run go test ./internal/dashboard -update", File)
	}
}

// TestEveryQueryUsesKnownVariables: each $name in a target or a variable's
// query is a variable defined before it (a query variable cannot use a
// later one), and every panel has a target.
func TestEveryQueryUsesKnownVariables(t *testing.T) {
	ref := regexp.MustCompile(`\$\{?([A-Za-z_]+)\}?`)
	known := map[string]bool{}
	for _, v := range Variables {
		for _, m := range ref.FindAllStringSubmatch(v.Query, -1) {
			if !known[m[1]] {
				t.Errorf("variable %s: query %q uses $%s, not defined before it", v.Name, v.Query, m[1])
			}
		}
		known[v.Name] = true
	}
	for _, r := range Rows {
		for _, p := range r.Panels {
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no target", p.Title)
			}
			for _, target := range p.Targets {
				for _, m := range ref.FindAllStringSubmatch(target, -1) {
					if !known[m[1]] {
						t.Errorf("panel %q: target %q uses $%s, which is not a variable", p.Title, target, m[1])
					}
				}
				if strings.Count(target, "(") != strings.Count(target, ")") {
					t.Errorf("panel %q: target %q has unbalanced parentheses", p.Title, target)
				}
			}
		}
	}
}

// TestJSONShape reads the file as Grafana would: unique panel ids, panels
// inside the 24-column grid without overlapping, every query on the
// datasource variable.
func TestJSONShape(t *testing.T) {
	data, err := os.ReadFile(File)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		UID           string `json:"uid"`
		SchemaVersion int    `json:"schemaVersion"`
		Panels        []struct {
			ID         int                         `json:"id"`
			Type       string                      `json:"type"`
			Title      string                      `json:"title"`
			GridPos    struct{ H, W, X, Y int }    `json:"gridPos"`
			Datasource *struct{ Type, UID string } `json:"datasource"`
			Targets    []struct {
				RefID  string `json:"refId"`
				Target string `json:"target"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	if d.UID != UID || d.SchemaVersion != SchemaVersion {
		t.Errorf("uid %q schemaVersion %d", d.UID, d.SchemaVersion)
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.X < 0 || g.W <= 0 || g.X+g.W > 24 || g.H <= 0 {
			t.Errorf("panel %q outside the grid: %+v", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("panel %q: datasource %+v, %d targets", p.Title, p.Datasource, len(p.Targets))
		}
	}
}
