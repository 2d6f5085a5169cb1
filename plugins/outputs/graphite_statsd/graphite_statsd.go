// Package graphite_statsd is the [[outputs.graphite_statsd]] plugin: it
// delivers Telegraf metrics to Graphite (plaintext protocol over TCP or UDP)
// or to statsd (gauges), with the paths of Telegraf's graphite serializer,
// and keeps what it could not deliver: in memory between writes, on disk
// between runs.
package graphite_statsd

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/influxdata/telegraf"
	"github.com/influxdata/telegraf/plugins/outputs"

	"github.com/hap-monitor/hap-monitor/plugins/common/buffer"
	"github.com/hap-monitor/hap-monitor/plugins/common/config"
	"github.com/hap-monitor/hap-monitor/plugins/common/contract"
	"github.com/hap-monitor/hap-monitor/plugins/common/logger"
	"github.com/hap-monitor/hap-monitor/plugins/common/tls"
)

//go:embed sample.conf
var sampleConfig string

const (
	transportTCP = "tcp"
	transportUDP = "udp"

	// maxLineTCP is the longest line carbon accepts on TCP: a longer one
	// makes it drop the connection.
	maxLineTCP = 16384
	// maxUDPPayload is the largest payload of a UDP datagram over IPv4.
	maxUDPPayload = 65507
	minPacketSize = 64

	// waitAbove is how many metrics may wait for a server that keeps
	// reading before Add waits too: one of Telegraf's default batches,
	// so that a gather streams through instead of piling up in memory.
	waitAbove = 1000

	defaultMaxPacketSize = 1432
	defaultBufferLimit   = 20000
	defaultTimeout       = 5 * time.Second
	// defaultSpoolLimit bounds spool_dir: a small share of a small /var
	// on a load balancer, that still keeps a long outage's gathers (see
	// the README's delivery section for how many).
	defaultSpoolLimit = 100 * 1000 * 1000
	// defaultReplayRate bounds how fast the spool's backlog is sent, in
	// lines a second: a 1000x10 gather (834,389 lines) in about 8 s, so
	// that a fleet coming back at once does not overflow a relay's queues
	// (the README's carbon-relay keeps 1,000,000 lines per cache).
	defaultReplayRate = 100000
)

// What the shim and the config loader rely on.
var (
	_ telegraf.Output        = (*GraphiteStatsd)(nil)
	_ contract.Buffered      = (*GraphiteStatsd)(nil)
	_ contract.Interrupter   = (*GraphiteStatsd)(nil)
	_ contract.BufferLimiter = (*GraphiteStatsd)(nil)
)

// GraphiteStatsd is the output plugin.
type GraphiteStatsd struct {
	Servers                 []string        `toml:"servers"`
	Format                  string          `toml:"format"`
	Transport               string          `toml:"transport"`
	Prefix                  string          `toml:"prefix"`
	Template                string          `toml:"template"`
	Templates               []string        `toml:"templates"`
	GraphiteTagSupport      bool            `toml:"graphite_tag_support"`
	GraphiteTagSanitizeMode string          `toml:"graphite_tag_sanitize_mode"`
	GraphiteSeparator       string          `toml:"graphite_separator"`
	GraphiteStrictRegex     string          `toml:"graphite_strict_sanitize_regex"`
	StatsdTags              bool            `toml:"statsd_tags"`
	MaxPacketSize           int             `toml:"max_packet_size"`
	Timeout                 config.Duration `toml:"timeout"`
	MetricBufferLimit       int             `toml:"metric_buffer_limit"`
	SpoolDir                string          `toml:"spool_dir"`
	SpoolLimit              config.Size     `toml:"spool_limit"`
	SpoolReplayRate         int             `toml:"spool_replay_rate"`
	tls.ClientConfig

	Log telegraf.Logger `toml:"-"`

	// mu serialises delivery (Write, Close); Add needs only the buffer.
	mu          sync.Mutex
	ser         *serializer
	targets     []*target
	buf         *buffer.Buffer
	link        *link   // the open connection, if any
	portion     int     // the most metrics a new connection carries; 0 is all
	lastTry     attempt // how the last failed delivery went
	report      failureReport
	probe       ackProbe // what the peer acknowledged: the kernel's count
	pace        replayPace
	closed      bool
	undelivered int
	chunk       []byte
	ends        []int
	minBackoff  time.Duration
	maxBackoff  time.Duration

	// ctx ends delivery at once when cancelled: Interrupt cancels it
	// timeout after it is called.
	ctx       context.Context
	cancel    context.CancelFunc
	interrupt sync.Once
}

func (*GraphiteStatsd) SampleConfig() string { return sampleConfig }

// SetMetricBufferLimit sets the default of metric_buffer_limit: [agent]
// metric_buffer_limit, handed over before the section is read.
func (o *GraphiteStatsd) SetMetricBufferLimit(n int) { o.MetricBufferLimit = n }

// Init validates every option, naming it in the error, and fills in
// defaults.
func (o *GraphiteStatsd) Init() error {
	if o.Log == nil {
		o.Log = logger.New(logger.NewSink(io.Discard, telegraf.Error), "outputs.graphite_statsd")
	}
	if err := o.checkOptions(); err != nil {
		return err
	}
	maxUnit := maxLineTCP
	if o.Transport == transportUDP {
		maxUnit = o.MaxPacketSize
	}
	ser, err := newSerializer(serializerOptions{
		Format:          o.Format,
		StatsdTags:      o.StatsdTags,
		Prefix:          o.Prefix,
		Template:        o.Template,
		Templates:       o.Templates,
		StrictRegex:     o.GraphiteStrictRegex,
		TagSupport:      o.GraphiteTagSupport,
		TagSanitizeMode: o.GraphiteTagSanitizeMode,
		Separator:       o.GraphiteSeparator,
		MaxUnit:         maxUnit,
	})
	if err != nil {
		return fmt.Errorf("template/templates: %w", err)
	}
	o.ser = ser
	if _, err := o.ClientConfig.TLSConfig(); err != nil {
		return err
	}
	o.targets = make([]*target, 0, len(o.Servers))
	for _, s := range o.Servers {
		o.targets = append(o.targets, &target{addr: s})
	}
	if o.minBackoff == 0 {
		o.minBackoff = time.Second
	}
	if o.maxBackoff == 0 {
		o.maxBackoff = time.Minute
	}
	return nil
}

func (o *GraphiteStatsd) checkOptions() error {
	switch o.Format {
	case "":
		o.Format = formatGraphite
	case formatGraphite, formatStatsd:
	default:
		return fmt.Errorf("format: %q is not \"graphite\" or \"statsd\"", o.Format)
	}
	switch o.Transport {
	case "":
		o.Transport = transportTCP
		if o.Format == formatStatsd {
			o.Transport = transportUDP
		}
	case transportTCP, transportUDP:
	default:
		return fmt.Errorf("transport: %q is not \"tcp\" or \"udp\"", o.Transport)
	}
	if o.Transport == transportUDP && o.ClientConfig.Enabled() {
		return errors.New("tls_*: TLS needs transport = \"tcp\"; UDP carries no TLS")
	}
	if len(o.Servers) == 0 {
		o.Servers = []string{"localhost:2003"}
		if o.Format == formatStatsd {
			o.Servers = []string{"localhost:8125"}
		}
	}
	for i, s := range o.Servers {
		if err := checkServer(s); err != nil {
			return fmt.Errorf("servers[%d]: %w", i, err)
		}
	}
	if o.GraphiteStrictRegex != "" {
		if _, err := regexp.Compile(o.GraphiteStrictRegex); err != nil {
			return fmt.Errorf("graphite_strict_sanitize_regex: %w", err)
		}
	}
	switch o.GraphiteTagSanitizeMode {
	case "", "strict", "compatible":
	default:
		return fmt.Errorf("graphite_tag_sanitize_mode: %q is not \"strict\" or \"compatible\"", o.GraphiteTagSanitizeMode)
	}
	if o.MaxPacketSize == 0 {
		o.MaxPacketSize = defaultMaxPacketSize
	}
	if o.MaxPacketSize < minPacketSize || o.MaxPacketSize > maxUDPPayload {
		return fmt.Errorf("max_packet_size: %d is out of range [%d, %d]", o.MaxPacketSize, minPacketSize, maxUDPPayload)
	}
	if o.Timeout == 0 {
		o.Timeout = config.Duration(defaultTimeout)
	}
	if o.Timeout < 0 {
		return fmt.Errorf("timeout: %s is negative", o.Timeout)
	}
	if o.MetricBufferLimit == 0 {
		o.MetricBufferLimit = defaultBufferLimit
	}
	if o.MetricBufferLimit < 0 {
		return fmt.Errorf("metric_buffer_limit: %d is negative", o.MetricBufferLimit)
	}
	if o.SpoolLimit == 0 {
		o.SpoolLimit = defaultSpoolLimit
	}
	if o.SpoolLimit < 0 {
		return fmt.Errorf("spool_limit: %d is negative", o.SpoolLimit)
	}
	if o.SpoolReplayRate == 0 {
		o.SpoolReplayRate = defaultReplayRate
	}
	if o.SpoolReplayRate < 0 {
		return fmt.Errorf("spool_replay_rate: %d is negative (lines a second)", o.SpoolReplayRate)
	}
	o.pace.rate = o.SpoolReplayRate
	if o.StatsdTags && o.Format != formatStatsd {
		return errors.New("statsd_tags: only applies to format = \"statsd\"")
	}
	return nil
}

func checkServer(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port: %w", s, err)
	}
	if host == "" {
		return fmt.Errorf("%q: no host", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not a number in [1, 65535]", s, port)
	}
	return nil
}

// Connect prepares delivery. It dials nothing (servers are dialled on the
// first write, and a server that is down is retried later), so it fails
// only on what retrying cannot fix: TLS files, the spool directory. With
// spool_dir it loads what earlier runs could not deliver, to send first.
func (o *GraphiteStatsd) Connect() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.ser == nil {
		return errors.New("Connect called before Init")
	}
	tlsConfig, err := o.ClientConfig.TLSConfig()
	if err != nil {
		return err
	}
	for _, t := range o.targets {
		t.tls = tlsConfig
	}
	var spool *buffer.Spool
	if o.SpoolDir != "" {
		if spool, err = buffer.NewSpool(o.SpoolDir, o.spoolName(), int64(o.SpoolLimit), o.Log); err != nil {
			return fmt.Errorf("spool_dir: %w", err)
		}
	}
	o.buf = buffer.New(o.MetricBufferLimit, spool, o.Log)
	o.buf.WaitForRoom(time.Duration(o.Timeout), waitAbove)
	if _, err := o.buf.LoadSpool(); err != nil {
		return fmt.Errorf("spool_dir: %w", err)
	}
	o.report = failureReport{log: o.Log}
	if o.probe == nil {
		o.probe = kernelProbe{}
	}
	o.ctx, o.cancel = context.WithCancel(context.Background())
	return nil
}

// spoolName names this output's files in spool_dir after its format,
// transport and servers, so that outputs sharing the directory keep apart.
func (o *GraphiteStatsd) spoolName() string {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\n%s\n%s", o.Format, o.Transport, strings.Join(o.Servers, ","))
	return fmt.Sprintf("graphite_statsd-%016x", h.Sum64())
}

// Add takes metrics into the buffer. It never waits on a server that
// makes no progress: with more than 1000 metrics waiting it waits for
// room only while a server keeps taking data, at least every timeout;
// otherwise it fills the buffer, and past metric_buffer_limit the oldest
// go to the spool (or, without spool_dir, are dropped), counted and
// logged. Deliver or Close delivers them.
func (o *GraphiteStatsd) Add(metrics []telegraf.Metric) {
	if o.buf == nil {
		o.Log.Errorf("%d metrics added before Connect are lost", len(metrics))
		return
	}
	o.buf.Add(metrics)
}

// Ready receives a value when metrics were added: a delivery loop waits on
// it before calling Deliver. Before Connect it never does.
func (o *GraphiteStatsd) Ready() <-chan struct{} {
	if o.buf == nil {
		return nil
	}
	return o.buf.Ready()
}

// Write adds metrics to the buffer, then delivers everything pending, in
// order, for as long as the server makes progress (a write gives up when
// the server takes nothing for timeout). It returns nil once the metrics
// are accepted, even when delivery fails: the failure is logged and the
// metrics kept for the next try, so a host that retries failed writes
// never sends twice. Write with no metrics is Deliver.
func (o *GraphiteStatsd) Write(metrics []telegraf.Metric) error {
	if o.buf == nil {
		return errors.New("write before Connect")
	}
	o.buf.Add(metrics)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return errors.New("write after close")
	}
	o.flush(o.ctx, false)
	return nil
}

// Deliver delivers what the buffer holds, in order, for as long as a
// server makes progress. A failure is reported (see failureReport) and
// what failed kept for the next try.
func (o *GraphiteStatsd) Deliver() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.buf == nil || o.closed {
		return
	}
	o.flush(o.ctx, false)
}

// Interrupt asks delivery to end: the write in flight, and Close's last
// try, get timeout more, then stop; what is undelivered is spooled. A
// process calls it when asked to stop (SIGTERM), before Close.
func (o *GraphiteStatsd) Interrupt() {
	if o.cancel == nil {
		return
	}
	o.interrupt.Do(func() { time.AfterFunc(time.Duration(o.Timeout), o.cancel) })
}

// Close tries a last delivery, for as long as the server makes progress
// (or until timeout after Interrupt), writes what is still undelivered to
// the spool when spool_dir is set, and closes the connection.
func (o *GraphiteStatsd) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.buf == nil {
		return nil
	}
	o.closed = true
	defer o.cancel()
	o.flush(o.ctx, true)
	o.closeLink()
	// One line for the failure: with a spool before the spool's own
	// line, which says where the metrics went; without, with the loss.
	failure := o.report.unsaid()
	if failure != "" && o.buf.Len() > 0 && o.SpoolDir != "" {
		o.Log.Errorf("delivery failed: %s", failure)
		failure = ""
	}
	held, spooled, err := o.buf.Close()
	o.undelivered = o.buf.Undelivered()
	if lost := held - spooled; lost > 0 {
		fix := ""
		if o.SpoolDir == "" {
			fix = " (set spool_dir to keep undelivered metrics for the next run)"
		}
		if failure != "" {
			o.Log.Errorf("delivery failed: %s: %d metrics lost%s", failure, lost, fix)
		} else {
			o.Log.Errorf("%d metrics were not delivered to %s and are lost%s", lost, strings.Join(o.Servers, ", "), fix)
		}
	} else if failure != "" {
		o.Log.Errorf("delivery failed: %s", failure)
	}
	if err != nil {
		return fmt.Errorf("spool_dir: %w", err)
	}
	return nil
}

// Undelivered returns how many metrics accepted by Add or Write were not
// delivered: dropped or spooled from a full buffer, or still undelivered
// at Close (spooled or lost). Meaningful after Close.
func (o *GraphiteStatsd) Undelivered() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || o.buf == nil {
		return o.undelivered
	}
	return o.buf.Len()
}

func init() {
	outputs.Add("graphite_statsd", func() telegraf.Output {
		return &GraphiteStatsd{
			Templates: append([]string(nil), contract.DefaultTemplates...),
			Timeout:   config.Duration(defaultTimeout),
		}
	})
}
