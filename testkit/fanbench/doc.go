// Package fanbench holds the fan-out benchmarks: commands on 50 and 100
// sandbox nodes through the control layer, each beside its OpenSSH
// baseline measured in the same run on the same nodes (pssh, parallel
// fresh ssh, ssh with ControlMaster). scripts/bench.sh runs them and
// prints the ratios.
package fanbench
