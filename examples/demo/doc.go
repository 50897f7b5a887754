// Package demo holds `make demo` (demo.sh: the whole tinkops loop on one
// machine) and the test that runs it.
package demo
