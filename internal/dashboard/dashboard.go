// Package dashboard builds hap-monitor's Grafana dashboard for Graphite
// (dashboards/graphite.json): its panels, their Graphite queries on the
// default paths, and the template variables that pick the prefix, the
// host, the process, the frontend, the backend and its servers.
//
// The panels are a table (panels.go); Build turns it into the JSON of
// Grafana's dashboard schema, with a stable layout and ids, and the test
// keeps dashboards/graphite.json equal to it (`go test
// ./internal/dashboard -update` rewrites the file). The tests also check
// the JSON against the types of Grafana's schema package and every query
// against a real graphite-web.
package dashboard

import (
	"bytes"
	"encoding/json"
)

// SchemaVersion is the Grafana dashboard schema version the JSON is
// written in (Grafana 12); a later Grafana migrates it on load.
const SchemaVersion = 41

// UID is the dashboard's uid: an import replaces the dashboard of an
// earlier import rather than adding a second one.
const UID = "hap-monitor-graphite"

// Variables the queries use, as Grafana writes them.
const (
	// rows is the path of a show stat row's process, before proxy and
	// server: <prefix>.<host>.<process_num>.
	rows = "$prefix.$host.$process"
	// master is the path of the master's fields.
	master = "$prefix.$host.haproxy_master"
)

// The JSON model: the parts of Grafana's dashboard schema this dashboard
// uses, in the order Grafana writes them.

type dashboardJSON struct {
	Annotations   annotations `json:"annotations"`
	Description   string      `json:"description"`
	Editable      bool        `json:"editable"`
	GraphTooltip  int         `json:"graphTooltip"`
	Links         []link      `json:"links"`
	Panels        []any       `json:"panels"`
	Refresh       string      `json:"refresh"`
	SchemaVersion int         `json:"schemaVersion"`
	Tags          []string    `json:"tags"`
	Templating    templating  `json:"templating"`
	Time          timeRange   `json:"time"`
	Timepicker    struct{}    `json:"timepicker"`
	Timezone      string      `json:"timezone"`
	Title         string      `json:"title"`
	UID           string      `json:"uid"`
	Version       int         `json:"version"`
	WeekStart     string      `json:"weekStart"`
	FiscalYear    int         `json:"fiscalYearStartMonth"`
	LiveNow       bool        `json:"liveNow"`
	Preload       bool        `json:"preload"`
}

type annotations struct {
	List []annotation `json:"list"`
}

type annotation struct {
	BuiltIn    int           `json:"builtIn"`
	Datasource datasourceRef `json:"datasource"`
	Enable     bool          `json:"enable"`
	Hide       bool          `json:"hide"`
	IconColor  string        `json:"iconColor"`
	Name       string        `json:"name"`
	Type       string        `json:"type"`
}

type link struct {
	Title       string   `json:"title"`
	Type        string   `json:"type"`
	URL         string   `json:"url"`
	Icon        string   `json:"icon"`
	Tags        []string `json:"tags"`
	TargetBlank bool     `json:"targetBlank"`
	AsDropdown  bool     `json:"asDropdown"`
	IncludeVars bool     `json:"includeVars"`
	KeepTime    bool     `json:"keepTime"`
	Tooltip     string   `json:"tooltip"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// graphite is the data source every panel and query variable uses: the
// dashboard's datasource variable.
var graphite = datasourceRef{Type: "graphite", UID: "${datasource}"}

type templating struct {
	List []variableJSON `json:"list"`
}

type variableJSON struct {
	AllValue    string         `json:"allValue,omitempty"`
	Current     option         `json:"current"`
	Datasource  *datasourceRef `json:"datasource,omitempty"`
	Description string         `json:"description"`
	Hide        int            `json:"hide"`
	IncludeAll  bool           `json:"includeAll"`
	Label       string         `json:"label"`
	Multi       bool           `json:"multi"`
	Name        string         `json:"name"`
	Options     []option       `json:"options"`
	Query       string         `json:"query"`
	Refresh     int            `json:"refresh"`
	Regex       string         `json:"regex"`
	SkipURLSync bool           `json:"skipUrlSync"`
	Sort        int            `json:"sort"`
	Type        string         `json:"type"`
}

type option struct {
	Selected bool   `json:"selected"`
	Text     string `json:"text"`
	Value    string `json:"value"`
}

type timeRange struct {
	From string `json:"from"`
	To   string `json:"to"`
}

type gridPos struct {
	H int `json:"h"`
	W int `json:"w"`
	X int `json:"x"`
	Y int `json:"y"`
}

type rowJSON struct {
	Collapsed bool    `json:"collapsed"`
	GridPos   gridPos `json:"gridPos"`
	ID        int     `json:"id"`
	Panels    []any   `json:"panels"`
	Title     string  `json:"title"`
	Type      string  `json:"type"`
}

type panelJSON struct {
	Datasource  datasourceRef  `json:"datasource"`
	Description string         `json:"description"`
	FieldConfig fieldConfig    `json:"fieldConfig"`
	GridPos     gridPos        `json:"gridPos"`
	ID          int            `json:"id"`
	Options     map[string]any `json:"options"`
	Targets     []targetJSON   `json:"targets"`
	Title       string         `json:"title"`
	Type        string         `json:"type"`
}

type fieldConfig struct {
	Defaults  fieldDefaults `json:"defaults"`
	Overrides []any         `json:"overrides"`
}

type fieldDefaults struct {
	Color      map[string]string `json:"color"`
	Custom     map[string]any    `json:"custom,omitempty"`
	Decimals   *int              `json:"decimals,omitempty"`
	Mappings   []any             `json:"mappings"`
	Min        *float64          `json:"min,omitempty"`
	Max        *float64          `json:"max,omitempty"`
	Thresholds thresholds        `json:"thresholds"`
	Unit       string            `json:"unit"`
}

type thresholds struct {
	Mode  string `json:"mode"`
	Steps []step `json:"steps"`
}

type step struct {
	Color string   `json:"color"`
	Value *float64 `json:"value"`
}

type targetJSON struct {
	Datasource datasourceRef `json:"datasource"`
	RefID      string        `json:"refId"`
	Target     string        `json:"target"`
}

// Build returns the dashboard's JSON, indented as Grafana exports it.
func Build() ([]byte, error) {
	d := dashboardJSON{
		Annotations: annotations{List: []annotation{{
			BuiltIn:    1,
			Datasource: datasourceRef{Type: "grafana", UID: "-- Grafana --"},
			Enable:     true,
			Hide:       true,
			IconColor:  "rgba(0, 211, 255, 1)",
			Name:       "Annotations & Alerts",
			Type:       "dashboard",
		}}},
		Description: "HAProxy statistics sent to Graphite by hap-monitor, on its default paths " +
			"(<prefix>.<host>.<process_num>.<proxy>.<server>.<field>). " +
			"For statsd, set prefix to stats.gauges.<prefix>.",
		Editable:     true,
		GraphTooltip: 1,
		Links: []link{{
			Title: "hap-monitor", Type: "link", Icon: "doc", Tags: []string{},
			URL:         "https://github.com/hap-monitor/hap-monitor/blob/main/docs/dashboard.md",
			TargetBlank: true, Tooltip: "What each panel shows, and how to adapt the dashboard",
		}},
		Refresh:       "1m",
		SchemaVersion: SchemaVersion,
		Tags:          []string{"haproxy", "hap-monitor", "graphite"},
		Templating:    templating{List: variablesJSON()},
		Time:          timeRange{From: "now-6h", To: "now"},
		Timezone:      "browser",
		Title:         "HAProxy (hap-monitor, Graphite)",
		UID:           UID,
		Version:       1,
		WeekStart:     "",
	}
	d.Panels = layout(Rows)
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// variablesJSON is the template variables, in the order Grafana shows
// them: each query variable's query uses only the variables before it.
func variablesJSON() []variableJSON {
	var list []variableJSON
	for _, v := range Variables {
		j := variableJSON{
			Name: v.Name, Label: v.Label, Description: v.Description, Type: v.Type,
			Query: v.Query, Regex: v.Regex, Multi: v.Multi, IncludeAll: v.IncludeAll,
			Options: []option{}, Current: option{},
		}
		switch v.Type {
		case "query":
			j.Datasource = &graphite
			j.Refresh = 2 // on time range change: hosts and proxies come and go
			j.Sort = 1    // alphabetical
		case "textbox", "custom":
			j.Current = option{Selected: true, Text: v.Default, Value: v.Default}
			if v.Type == "custom" {
				for _, o := range v.Options {
					j.Options = append(j.Options, option{Selected: o.Value == v.Default, Text: o.Text, Value: o.Value})
					if o.Value == v.Default {
						j.Current.Text = o.Text
					}
				}
			} else {
				j.Options = []option{j.Current}
			}
		}
		list = append(list, j)
	}
	return list
}

// layout places the rows and their panels on Grafana's 24-column grid:
// each row's panels side by side, as many as fit, then the next line.
func layout(rows []Row) []any {
	var (
		out []any
		id  = 1
		y   = 0
	)
	for _, r := range rows {
		out = append(out, rowJSON{GridPos: gridPos{H: 1, W: 24, X: 0, Y: y}, ID: id, Panels: []any{}, Title: r.Title, Type: "row"})
		id++
		y++
		x, lineH := 0, 0
		for _, p := range r.Panels {
			w, h := p.width(), p.height()
			if x+w > 24 {
				x, y, lineH = 0, y+lineH, 0
			}
			out = append(out, p.json(id, gridPos{H: h, W: w, X: x, Y: y}))
			id++
			x += w
			lineH = max(lineH, h)
		}
		y += lineH
	}
	return out
}

func (p Panel) width() int {
	if p.Width > 0 {
		return p.Width
	}
	return 12
}

func (p Panel) height() int {
	if p.Kind == Stat {
		return 5
	}
	return 8
}

func (p Panel) json(id int, pos gridPos) panelJSON {
	j := panelJSON{
		Datasource: graphite, Description: p.Description, GridPos: pos, ID: id,
		Title: p.Title, Type: string(p.Kind),
	}
	for i, t := range p.Targets {
		j.Targets = append(j.Targets, targetJSON{Datasource: graphite, RefID: string(rune('A' + i)), Target: t})
	}
	base := step{Color: "green", Value: nil}
	j.FieldConfig = fieldConfig{
		Defaults: fieldDefaults{
			Color:      map[string]string{"mode": "palette-classic"},
			Mappings:   []any{},
			Thresholds: thresholds{Mode: "absolute", Steps: []step{base}},
			Unit:       p.Unit,
			Min:        p.Min,
			Max:        p.Max,
		},
		Overrides: []any{},
	}
	if p.Alert != nil {
		j.FieldConfig.Defaults.Thresholds.Steps = append(j.FieldConfig.Defaults.Thresholds.Steps, step{Color: "red", Value: p.Alert})
	}
	switch p.Kind {
	case TimeSeries:
		stacking := "none"
		if p.Stack {
			stacking = "normal"
		}
		j.FieldConfig.Defaults.Custom = map[string]any{
			"drawStyle":         "line",
			"fillOpacity":       map[bool]int{true: 30, false: 10}[p.Stack],
			"lineWidth":         1,
			"showPoints":        "never",
			"spanNulls":         true,
			"stacking":          map[string]string{"group": "A", "mode": stacking},
			"thresholdsStyle":   map[string]string{"mode": "off"},
			"axisPlacement":     "auto",
			"gradientMode":      "none",
			"lineInterpolation": "linear",
		}
		j.Options = map[string]any{
			"legend":  map[string]any{"calcs": []string{"lastNotNull", "max"}, "displayMode": "table", "placement": "bottom", "showLegend": true},
			"tooltip": map[string]any{"mode": "multi", "sort": "desc"},
		}
	case Stat:
		j.FieldConfig.Defaults.Color = map[string]string{"mode": "thresholds"}
		j.Options = map[string]any{
			"colorMode":     "background",
			"graphMode":     "none",
			"justifyMode":   "auto",
			"orientation":   "auto",
			"reduceOptions": map[string]any{"calcs": []string{"lastNotNull"}, "fields": "", "values": false},
			"textMode":      "value_and_name",
			"wideLayout":    true,
			// Required by the stat panel's schema.
			"percentChangeColorMode": "standard",
			"showPercentChange":      false,
		}
	}
	return j
}
