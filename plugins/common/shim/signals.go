package shim

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/influxdata/telegraf"
)

// caughtSignals are the signals CatchSignals takes from their default
// action, which is to end the process on the spot.
var caughtSignals = []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2}

// CatchSignals makes sure no signal ends the process before its outputs
// have delivered or spooled what they hold, for the rest of the process's
// life; call it first thing in main and give the channel to HandleSignals.
//
// SIGPIPE is ignored: a write to a closed pipe fails with EPIPE instead of
// killing the process (Go's runtime otherwise dies of SIGPIPE on fds 1
// and 2). A stderr whose reader went away (Telegraf killed) makes log lines
// vanish; a closed stdout is an error the execd input returns. SIGHUP,
// SIGINT, SIGTERM, SIGUSR1 and SIGUSR2 arrive on the returned channel.
func CatchSignals() <-chan os.Signal {
	signal.Ignore(syscall.SIGPIPE)
	ch := make(chan os.Signal, len(caughtSignals))
	signal.Notify(ch, caughtSignals...)
	return ch
}

// HandleSignals reads sigs (from CatchSignals; nil: none) until release is
// called, and returns a context cancelled by the first signal that stops
// the run. With gather (the execd input), SIGHUP, SIGUSR1 and SIGUSR2 ask
// for a gather, on the returned channel (for InputOptions.Triggers), and
// SIGINT and SIGTERM stop; otherwise every caught signal stops, so that the
// run ends through its normal shutdown (last delivery try, spool) instead
// of the signal's default action. A signal stopping the run is logged; one
// arriving while stopping (a second SIGTERM, or the first after ctx was
// cancelled) is logged as a warning and otherwise ignored: the shutdown in
// progress goes on, bounded by the outputs' timeouts.
func HandleSignals(ctx context.Context, sigs <-chan os.Signal, gather bool, log telegraf.Logger) (context.Context, <-chan os.Signal, func()) {
	ctx, cancel := context.WithCancel(ctx)
	var triggers chan os.Signal
	if gather {
		triggers = make(chan os.Signal, 1)
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			var sig os.Signal
			select {
			case <-done:
				return
			case sig = <-sigs:
			}
			switch {
			case triggers != nil && isTrigger(sig):
				select {
				case triggers <- sig:
				default: // a gather is already asked for
				}
			case ctx.Err() == nil:
				log.Infof("received %s: shutting down", SignalName(sig))
				cancel()
			default:
				log.Warnf("received %s while shutting down: ignored, the shutdown in progress finishes first", SignalName(sig))
			}
		}
	}()
	return ctx, triggers, func() {
		close(done)
		<-finished
		cancel()
	}
}

func isTrigger(sig os.Signal) bool {
	return sig == syscall.SIGHUP || sig == syscall.SIGUSR1 || sig == syscall.SIGUSR2
}

// SignalName returns the signal's name as kill(1) and Telegraf's config
// spell it ("SIGTERM"), for the signals hap-monitor handles.
func SignalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGUSR1:
		return "SIGUSR1"
	case syscall.SIGUSR2:
		return "SIGUSR2"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	}
	return fmt.Sprint(sig)
}
