package store

import "strconv"

// The files of a run directory. Each is named here, once: a reader never
// spells "journal.jsonl".
const (
	// LogFile is the run's own log (Jepsen's jepsen.log).
	LogFile = "jepsen.log"
	// JournalFile is the journal of every lifecycle event and nemesis
	// decision (package event), one JSON line each.
	JournalFile = "journal.jsonl"
	// RunInfoFile is run.json: what the run is and how it ended.
	RunInfoFile = "run.json"
	// ManifestFile lists each log file fetched, missing or failed.
	ManifestFile = "manifest.json"
	// TimelineFile is the timeline drawn from the journal.
	TimelineFile = "timeline.svg"
	// HistoryFile is the history of every client and nemesis operation
	// (package history's format).
	HistoryFile = "history.jsonl"
	// EDNHistoryFile is the history as Jepsen writes it (jepsen export).
	EDNHistoryFile = "history.edn"
	// ResultsFile is the checkers' verdict.
	ResultsFile = "results.json"
	// LinearizabilityFile is porcupine's picture of the first key that is
	// not linearizable.
	LinearizabilityFile = "linearizability.html"
	// ReportFile is the run's page, self-contained.
	ReportFile = "report.html"
	// ClientFile counts client operations per second.
	ClientFile = "client.json"
	// FaultsFile records the faults in force, written before each fault,
	// so that recovery works after the control process died.
	FaultsFile = "faults.json"
	// CheckerFile describes the run's checker (checker.Spec), so that an
	// old run is checked again with the same checkers.
	CheckerFile = "checker.json"
	// LatencyFile, QuantilesFile and RateFile are the latency and
	// throughput pictures (package perf).
	LatencyFile   = "latency-raw.svg"
	QuantilesFile = "latency-quantiles.svg"
	RateFile      = "rate.svg"
	// IndependentDir holds each independent key's pictures, one
	// directory per key (Jepsen's "independent").
	IndependentDir = "independent"
	// ElleDir holds Elle's pictures of the anomalies it found, one SVG
	// per cycle (Jepsen's "elle" directory).
	ElleDir = "elle"
)

// CycleTryDir is where a failed cycle try's logs are kept, relative to
// the run directory.
func CycleTryDir(try int) string { return "cycle-try-" + strconv.Itoa(try) }
