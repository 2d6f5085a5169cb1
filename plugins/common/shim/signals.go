package shim

import (
	"os"
	"os/signal"
	"syscall"
)

// TriggerSignals subscribes to the signals Telegraf's inputs.execd may send
// to ask for a gather (signal = "SIGHUP", "SIGUSR1" or "SIGUSR2") and
// returns their channel, for InputOptions.Triggers, and the function that
// unsubscribes. Without it, SIGHUP would end the process.
func TriggerSignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2)
	return ch, func() { signal.Stop(ch) }
}
