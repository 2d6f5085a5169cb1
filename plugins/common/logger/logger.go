// Package logger writes plugin log lines in the form Telegraf's execd plugins
// read from a child's stderr: one line per message, starting with the level
// indicator ("E! ", "W! ", "I! ", "D! ") and no timestamp in front, so that
// Telegraf files each line at its level.
package logger

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/influxdata/telegraf"
)

// Sink is where loggers write. It serialises whole lines so that concurrent
// plugins never interleave within a line.
type Sink struct {
	mu    sync.Mutex // held while a line is written
	w     io.Writer
	level atomic.Int32
}

// NewSink returns a Sink writing lines at or above level to w.
func NewSink(w io.Writer, level telegraf.LogLevel) *Sink {
	s := &Sink{w: w}
	s.level.Store(int32(level))
	return s
}

// Level reports the sink's level.
func (s *Sink) Level() telegraf.LogLevel { return telegraf.LogLevel(s.level.Load()) }

// SetLevel changes the level of every logger writing to s.
func (s *Sink) SetLevel(l telegraf.LogLevel) { s.level.Store(int32(l)) }

// SetOutput makes s write to w from now on.
func (s *Sink) SetOutput(w io.Writer) {
	s.mu.Lock()
	s.w = w
	s.mu.Unlock()
}

func (s *Sink) write(level telegraf.LogLevel, source, msg string) {
	if !s.Level().Includes(level) {
		return
	}
	// A message that spans lines would reach Telegraf as several lines,
	// the later ones without a level: fold it onto one.
	msg = strings.TrimRight(msg, "\n")
	msg = strings.ReplaceAll(msg, "\n", " ")
	var b strings.Builder
	b.Grow(len(msg) + len(source) + 8)
	b.WriteString(level.Indicator())
	b.WriteByte(' ')
	if source != "" {
		b.WriteByte('[')
		b.WriteString(source)
		b.WriteString("] ")
	}
	b.WriteString(msg)
	b.WriteByte('\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	io.WriteString(s.w, b.String()) //nolint:errcheck // nowhere left to report a failing stderr
}

// Logger is a telegraf.Logger for one plugin, tagged with its source
// ("inputs.haproxy", "outputs.graphite_statsd").
type Logger struct {
	sink   *Sink
	source string
}

// New returns a logger for source writing to sink.
func New(sink *Sink, source string) *Logger {
	return &Logger{sink: sink, source: source}
}

var _ telegraf.Logger = (*Logger)(nil)

func (l *Logger) Level() telegraf.LogLevel { return l.sink.Level() }

// AddAttribute is accepted for interface compatibility; attributes are not printed.
func (l *Logger) AddAttribute(string, any) {}

func (l *Logger) Errorf(format string, args ...any) { l.logf(telegraf.Error, format, args...) }
func (l *Logger) Error(args ...any)                 { l.log(telegraf.Error, args...) }
func (l *Logger) Warnf(format string, args ...any)  { l.logf(telegraf.Warn, format, args...) }
func (l *Logger) Warn(args ...any)                  { l.log(telegraf.Warn, args...) }
func (l *Logger) Infof(format string, args ...any)  { l.logf(telegraf.Info, format, args...) }
func (l *Logger) Info(args ...any)                  { l.log(telegraf.Info, args...) }
func (l *Logger) Debugf(format string, args ...any) { l.logf(telegraf.Debug, format, args...) }
func (l *Logger) Debug(args ...any)                 { l.log(telegraf.Debug, args...) }
func (l *Logger) Tracef(format string, args ...any) { l.logf(telegraf.Trace, format, args...) }
func (l *Logger) Trace(args ...any)                 { l.log(telegraf.Trace, args...) }

func (l *Logger) logf(level telegraf.LogLevel, format string, args ...any) {
	if !l.sink.Level().Includes(level) {
		return
	}
	l.sink.write(level, l.source, fmt.Sprintf(format, args...))
}

func (l *Logger) log(level telegraf.LogLevel, args ...any) {
	if !l.sink.Level().Includes(level) {
		return
	}
	l.sink.write(level, l.source, fmt.Sprint(args...))
}
