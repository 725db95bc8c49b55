//go:build race

package interpreter

const raceEnabled = true
