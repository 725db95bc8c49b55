package nemesis

// Perform is perform (schedule_test.go), for the sandbox tests of
// package nemesis_test.
var Perform = perform
