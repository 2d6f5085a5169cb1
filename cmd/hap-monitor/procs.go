package main

import (
	"os"
	"runtime"
	"strconv"

	"github.com/influxdata/telegraf"
)

// limitProcs lets Go code run on one CPU at a time unless the GOMAXPROCS
// environment variable asks for another number.
//
// A monitor shares its host with the HAProxy it watches. A gather is one
// stream (socket, parse, serialise, send) whose stages hand each other
// work many times per answer, because HAProxy writes its answer a few
// KiB at a time. With more than one CPU each hand-off wakes another
// thread, which spins before it sleeps again: on one CPU a cron run
// (-once) costs a fifth to two fifths less CPU and ends sooner, the execd
// input a tenth less (BENCHMARKS.md), and the monitor never takes more
// than one CPU from HAProxy.
func limitProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// logProcs says in the debug log how many CPUs Go code runs on and why,
// and warns of a GOMAXPROCS that Go ignores.
func logProcs(log telegraf.Logger) {
	n := runtime.GOMAXPROCS(0)
	cpus := "CPUs"
	if n == 1 {
		cpus = "CPU"
	}
	env := os.Getenv("GOMAXPROCS")
	v, err := strconv.Atoi(env)
	switch {
	case env == "":
		log.Debugf("Go code runs on %d %s at a time (the default; the GOMAXPROCS environment variable sets it)", n, cpus)
	case err != nil || v < 1:
		log.Warnf("GOMAXPROCS=%q in the environment is not a positive number: Go ignores it and runs Go code on %d %s at a time", env, n, cpus)
	default:
		log.Debugf("Go code runs on %d %s at a time (GOMAXPROCS=%s in the environment)", n, cpus, env)
	}
}
