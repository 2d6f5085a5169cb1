package main

import (
	"fmt"
	"os"
	"runtime"
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

// procsInForce says how many CPUs Go code runs on and why, for the debug
// log.
func procsInForce() string {
	n := runtime.GOMAXPROCS(0)
	cpus := "CPUs"
	if n == 1 {
		cpus = "CPU"
	}
	if env := os.Getenv("GOMAXPROCS"); env != "" {
		return fmt.Sprintf("Go code runs on %d %s at a time (GOMAXPROCS=%s in the environment)", n, cpus, env)
	}
	return fmt.Sprintf("Go code runs on %d %s at a time (the default; the GOMAXPROCS environment variable sets it)", n, cpus)
}
