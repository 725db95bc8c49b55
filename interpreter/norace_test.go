//go:build !race

package interpreter

const raceEnabled = false
