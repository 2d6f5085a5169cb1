package dashboard

import "strconv"

// Kind is a Grafana panel type.
type Kind string

// The panel types the dashboard uses.
const (
	TimeSeries Kind = "timeseries"
	Stat       Kind = "stat"
)

// Row is a titled row of panels.
type Row struct {
	Title  string
	Panels []Panel
}

// Panel is one panel: its Graphite targets on the default paths, with the
// dashboard's variables in them.
type Panel struct {
	Title       string
	Description string
	Kind        Kind
	Unit        string // Grafana's unit id: "reqps", "ms", "percent", ...
	Targets     []string
	Stack       bool     // stacked series (parts of a whole)
	Width       int      // of Grafana's 24 columns; 0 is 12
	Min, Max    *float64 // axis bounds; nil is automatic
	Alert       *float64 // a value from which the panel turns red
}

// Variable is a template variable.
type Variable struct {
	Name, Label, Description string
	Type                     string // query, textbox, custom, datasource
	Query                    string // query: a Graphite find query, or expand(...)
	Regex                    string // applied to each found name, as JavaScript reads it
	Default                  string // textbox and custom: the value a new dashboard has
	Options                  []Option
	Multi, IncludeAll        bool
}

// Option is one choice of a custom variable.
type Option struct{ Text, Value string }

func num(v float64) *float64 { return &v }

// DefaultPrefix is the prefix variable's value in a new dashboard: the
// README's, and the original HAP-Monitor's scope.
const DefaultPrefix = "my.system.stats.haproxy"

// Variables are the dashboard's template variables, in order.
var Variables = []Variable{
	{Name: "datasource", Label: "Graphite", Type: "datasource", Query: "graphite",
		Description: "The Graphite data source hap-monitor's carbon feeds."},
	{Name: "prefix", Label: "Prefix", Type: "textbox", Default: DefaultPrefix,
		Description: "The output's prefix (the original's scope). Through statsd: stats.gauges. before it."},
	{Name: "responses", Label: "Field names", Type: "custom", Default: "http_response.",
		Options: []Option{
			{Text: "config file, Telegraf", Value: "http_response."},
			{Text: "original command line", Value: "hrsp_"},
		},
		Description: "How the HTTP response counters are named: http_response.5xx (a config file, Telegraf) or hrsp_5xx (the original's command line)."},
	{Name: "host", Label: "Host", Type: "query", Query: "$prefix.*", Multi: true, IncludeAll: true,
		Description: "The short host names under the prefix."},
	{Name: "process", Label: "Process", Type: "query", Query: "$prefix.$host.*", Regex: `/^[0-9]+$/`, Multi: true, IncludeAll: true,
		Description: "HAProxy's process_num (1 on every HAProxy since 2.5)."},
	{Name: "frontend", Label: "Frontend", Type: "query", Query: "expand(" + rows + ".*.FRONTEND)", Regex: `/\.([^.]+)\.FRONTEND$/`, Multi: true, IncludeAll: true,
		Description: "Proxies with a FRONTEND row (frontends and listens)."},
	{Name: "backend", Label: "Backend", Type: "query", Query: "expand(" + rows + ".*.BACKEND)", Regex: `/\.([^.]+)\.BACKEND$/`, Multi: true, IncludeAll: true,
		Description: "Proxies with a BACKEND row (backends and listens)."},
	{Name: "server", Label: "Server", Type: "query", Query: rows + ".$backend.*", Regex: `/^(?!(BACKEND|FRONTEND)$)/`, Multi: true, IncludeAll: true,
		Description: "The chosen backends' servers (a listen's FRONTEND and BACKEND rows left out)."},
}

// aliasRow names each series of a show stat row's field by its host, proxy
// and field: host.process.proxy.server.field... counted from the end, so
// the prefix may have any number of levels. levels is how many levels the
// field has (status.DOWN: 2).
func aliasRow(expr string, levels int, server bool) string {
	field := strconv.Itoa(-1)
	proxy := strconv.Itoa(-(levels + 2))
	host := strconv.Itoa(-(levels + 4))
	nodes := host + ", " + proxy
	if server {
		nodes += ", " + strconv.Itoa(-(levels + 1))
	}
	return "aliasByNode(" + expr + ", " + nodes + ", " + field + ")"
}

// responsesByClass is HTTP responses of class (a glob: "{1xx,2xx}") of a
// row kind (FRONTEND, BACKEND) per second, named host.proxy.class. The
// original's names (hrsp_5xx) are one level, Telegraf's
// (http_response.5xx) two: aliasSub gives both Telegraf's before the
// levels are counted.
func responsesByClass(proxy, row, class string) string {
	expr := "aliasSub(perSecond(" + rows + "." + proxy + "." + row + ".${responses}" + class + "), 'hrsp_', 'http_response.')"
	return aliasRow(expr, 2, false)
}

// Rows are the dashboard's rows and panels, top to bottom.
var Rows = []Row{
	{Title: "Frontends", Panels: []Panel{
		{Title: "Requests per second", Kind: TimeSeries, Unit: "reqps",
			Description: "HTTP requests per second over the last second (req_rate), per frontend.",
			Targets:     []string{aliasRow(rows+".$frontend.FRONTEND.req_rate", 1, false)}},
		{Title: "Sessions and their limit", Kind: TimeSeries, Unit: "short",
			Description: "Current sessions (scur) against the frontend's maxconn (slim).",
			Targets:     []string{aliasRow(rows+".$frontend.FRONTEND.{scur,slim}", 1, false)}},
		{Title: "HTTP responses by class", Kind: TimeSeries, Unit: "reqps", Stack: true,
			Description: "Responses per second, 1xx to 5xx, per frontend.",
			Targets:     []string{responsesByClass("$frontend", "FRONTEND", "{1xx,2xx,3xx,4xx,5xx}")}},
		{Title: "HTTP 5xx per second", Kind: TimeSeries, Unit: "reqps",
			Description: "Server errors per second, of the frontends and of the backends.",
			Targets: []string{
				responsesByClass("$frontend", "FRONTEND", "5xx"),
				responsesByClass("$backend", "BACKEND", "5xx"),
			}},
		{Title: "Sessions per second", Kind: TimeSeries, Unit: "short",
			Description: "New sessions per second over the last second (rate) against the limit (rate_lim).",
			Targets:     []string{aliasRow(rows+".$frontend.FRONTEND.{rate,rate_lim}", 1, false)}},
		{Title: "Bytes per second", Kind: TimeSeries, Unit: "Bps",
			Description: "Bytes in and out per second, per frontend.",
			Targets:     []string{aliasRow("perSecond("+rows+".$frontend.FRONTEND.{bin,bout})", 1, false)}},
	}},
	{Title: "Backends and servers", Panels: []Panel{
		{Title: "Servers by state", Kind: TimeSeries, Unit: "short", Stack: true, Min: num(0),
			Description: "How many of each backend's servers are in each state (servers.UP, servers.DOWN, ...).",
			Targets:     []string{aliasRow(rows+".$backend.BACKEND.servers.{UP,DOWN,NOLB,DRAIN,MAINT,NOCHECK,OTHER}", 2, false)}},
		{Title: "Servers DOWN now", Kind: Stat, Unit: "short", Alert: num(1),
			Description: "The servers whose last status is DOWN (status.DOWN).",
			Targets:     []string{aliasRow("currentAbove("+rows+".$backend.$server.status.DOWN, 0)", 2, true)}},
		{Title: "Server state: DOWN", Kind: TimeSeries, Unit: "short", Min: num(0), Max: num(1),
			Description: "1 while a server is DOWN (status.DOWN), per server.",
			Targets:     []string{aliasRow(rows+".$backend.$server.status.DOWN", 2, true)}},
		{Title: "Queue", Kind: TimeSeries, Unit: "short",
			Description: "Requests waiting for a server: in the backend's queue, and in each server's (qcur).",
			Targets: []string{
				aliasRow(rows+".$backend.BACKEND.qcur", 1, false),
				aliasRow(rows+".$backend.$server.qcur", 1, true),
			}},
		{Title: "Queue, connect and response times", Kind: TimeSeries, Unit: "ms",
			Description: "Average over the last 1024 requests: time in the queue (qtime), to connect (ctime), to the response (rtime), in all (ttime).",
			Targets:     []string{aliasRow(rows+".$backend.BACKEND.{qtime,ctime,rtime,ttime}", 1, false)}},
		{Title: "Backend sessions and their limit", Kind: TimeSeries, Unit: "short",
			Description: "Current sessions (scur) against the backend's limit (slim).",
			Targets:     []string{aliasRow(rows+".$backend.BACKEND.{scur,slim}", 1, false)}},
		{Title: "Server sessions", Kind: TimeSeries, Unit: "short", Stack: true,
			Description: "Current sessions of each server (scur).",
			Targets:     []string{aliasRow(rows+".$backend.$server.scur", 1, true)}},
		{Title: "HTTP responses by class, backends", Kind: TimeSeries, Unit: "reqps", Stack: true,
			Description: "Responses per second, 1xx to 5xx, per backend.",
			Targets:     []string{responsesByClass("$backend", "BACKEND", "{1xx,2xx,3xx,4xx,5xx}")}},
	}},
	{Title: "Processes", Panels: []Panel{
		{Title: "Idle", Kind: TimeSeries, Unit: "percent", Min: num(0), Max: num(100),
			Description: "How much of the time HAProxy's threads were idle (Idle_pct of show info): near 0, HAProxy is saturated.",
			Targets:     []string{"aliasByNode($prefix.$host.$process.Idle_pct, -3, -2, -1)"}},
		{Title: "Connections", Kind: TimeSeries, Unit: "short",
			Description: "Connections per second (ConnRate) and current connections (CurrConns) against maxconn (Maxconn).",
			Targets:     []string{"aliasByNode($prefix.$host.$process.{ConnRate,CurrConns,Maxconn}, -3, -2, -1)"}},
	}},
	{Title: "Reloads and stick tables", Panels: []Panel{
		{Title: "Failed reloads", Kind: Stat, Unit: "short", Width: 6, Alert: num(1),
			Description: "Reloads that failed since the last good one (haproxy_master): above 0, HAProxy runs an older configuration than the one on disk.",
			Targets:     []string{"aliasByNode(" + master + ".failed_reloads, -3)"}},
		{Title: "Reloads", Kind: Stat, Unit: "short", Width: 6,
			Description: "Reloads since the master started, failed ones included (haproxy_master).",
			Targets:     []string{"aliasByNode(" + master + ".reloads, -3)"}},
		{Title: "Workers and old workers", Kind: TimeSeries, Unit: "short", Min: num(0),
			Description: "Workers serving (workers), and old workers still finishing their connections after a reload (old_workers).",
			Targets:     []string{"aliasByNode(" + master + ".{workers,old_workers}, -3, -1)"}},
		{Title: "Stick tables, % full", Kind: TimeSeries, Unit: "percent", Min: num(0),
			Description: "Entries used against the table's size (haproxy_table), per table.",
			Targets:     []string{"aliasByNode(asPercent(" + rows + ".haproxy_table.*.used, " + rows + ".haproxy_table.*.size), -5, -2)"}},
		{Title: "Stick table entries", Kind: TimeSeries, Unit: "short",
			Description: "Entries used in each table (haproxy_table used).",
			Targets:     []string{"aliasByNode(" + rows + ".haproxy_table.*.used, -5, -2)"}},
	}},
	{Title: "HA pair and discovery", Panels: []Panel{
		{Title: "Peers connected", Kind: TimeSeries, Unit: "short", Width: 8, Min: num(0), Max: num(1),
			Description: "1 while the session to each remote peer of each peers section is established (haproxy_peer connected): 0, the pair no longer replicates its stick tables.",
			Targets:     []string{"aliasByNode(" + peers + ".connected, -6, -3, -2)"}},
		{Title: "Replication backlog", Kind: TimeSeries, Unit: "short", Width: 8, Min: num(0),
			Description: "Updates of the shared stick tables made here and not yet pushed to each peer (haproxy_peer backlog): growing, the peer is behind.",
			Targets:     []string{"aliasByNode(" + peers + ".backlog, -6, -3, -2)"}},
		{Title: "DNS answers and errors per second", Kind: TimeSeries, Unit: "short", Width: 8,
			Description: "Per nameserver of each resolvers section (haproxy_resolver): queries sent, valid answers, and each kind of error per second. Sent growing with no answer: the nameserver does not answer.",
			Targets:     []string{"aliasByNode(perSecond(" + resolvers + ".{sent,valid,nx,timeout,refused,other,invalid,snd_error}), -6, -3, -2, -1)"}},
	}},
	{Title: "Certificates", Panels: []Panel{
		{Title: "Certificates expiring within 14 days", Kind: Stat, Unit: "short", Width: 6, Alert: num(1),
			Description: "Certificates HAProxy serves (haproxy_cert, from its memory) whose notAfter is less than 14 days away, expired ones included.",
			Targets:     []string{"countSeries(currentBelow(" + certs + ".expiry, 1209600))"}},
		{Title: "Days left per certificate", Kind: TimeSeries, Unit: "d", Width: 18,
			Description: "Days until each certificate's notAfter (haproxy_cert expiry), soonest first; negative once expired. What HAProxy serves, not the file on disk.",
			Targets:     []string{"aliasByNode(sortBy(scale(" + certs + ".expiry, " + perDay + "), 'min'), -5, -2)"}},
		{Title: "ACME renewals overdue", Kind: Stat, Unit: "short", Width: 4, Alert: num(1),
			Description: "Certificates HAProxy renews itself (haproxy_acme) whose renewal date has passed and which it has not renewed: a renewal failed (ACME server unreachable, a challenge refused) and waits for the scheduler's next look, 12 hours on.",
			Targets:     []string{"countSeries(currentBelow(" + acme + ".scheduled_in, -1))"}},
		{Title: "ACME renewals under way", Kind: Stat, Unit: "short", Width: 4,
			Description: "Renewals HAProxy is running now (haproxy_acme state.RUNNING), retries included: one that stays for minutes is retrying a failed step.",
			Targets:     []string{"countSeries(currentAbove(" + acme + ".state.RUNNING, 0))"}},
		{Title: "Days until each ACME renewal", Kind: TimeSeries, Unit: "d", Width: 16,
			Description: "Days until HAProxy renews each certificate (haproxy_acme scheduled_in), soonest first: negative, the renewal is overdue; no point while one runs.",
			Targets:     []string{"aliasByNode(sortBy(scale(" + acme + ".scheduled_in, " + perDay + "), 'min'), -5, -2)"}},
		{Title: "OCSP updates failing", Kind: Stat, Unit: "short", Width: 6, Alert: num(1),
			Description: "Certificates whose last OCSP response update by HAProxy failed (haproxy_ocsp last_update_status other than 1, successful): clients that require stapling see no fresh response once the old one expires.",
			Targets:     []string{"countSeries(currentAbove(" + ocsp + ".last_update_status, 1))"}},
		{Title: "OCSP update failures", Kind: TimeSeries, Unit: "short", Width: 18,
			Description: "Failed OCSP response updates per certificate in each interval (haproxy_ocsp failures).",
			Targets:     []string{"aliasByNode(nonNegativeDerivative(" + ocsp + ".failures), -5, -2)"}},
	}},
}

// peers is each peer of each peers section's path of haproxy_peer;
// resolvers each nameserver's of haproxy_resolver.
const (
	peers     = rows + ".haproxy_peer.*.*"
	resolvers = rows + ".haproxy_resolver.*.*"
)

// certs, acme and ocsp are each certificate file's path of haproxy_cert,
// haproxy_acme and haproxy_ocsp.
const (
	certs = rows + ".haproxy_cert.*"
	acme  = rows + ".haproxy_acme.*"
	ocsp  = rows + ".haproxy_ocsp.*"
)

// perDay turns seconds into days: 1/86400.
const perDay = "0.000011574074074074073"
