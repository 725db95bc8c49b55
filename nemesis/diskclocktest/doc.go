// Package diskclocktest tests the nemesis's disk and clock fault families
// (power-loss, disk-full, bitflip, clock) on real etcd clusters on
// sandbox nodes of their own ("dcf"), through the Nemesis API: a run
// starts, applies a fault with a plan, undoes it, and recovers the
// faults a SIGKILLed control process left in force from faults.json. It
// has only tests; they need root and skip with -short.
package diskclocktest
