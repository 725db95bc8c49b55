package db

// Assemble returns a DB whose Setup, Teardown and Unwrap are base's and
// whose optional capabilities are exactly the non-nil fields of caps, no
// more: a type assertion to Kill, Pause, Primary or LogFiles on the result
// succeeds if and only if the field is set. It is how every wrapper in
// go-jepsen keeps capabilities exact, and is there for users' wrappers too.
func Assemble(base Wrapper, caps Capabilities) DB {
	k, p, pr, l := caps.Kill, caps.Pause, caps.Primary, caps.LogFiles
	switch {
	case k == nil && p == nil && pr == nil && l == nil:
		return struct{ Wrapper }{base}
	case k != nil && p == nil && pr == nil && l == nil:
		return struct {
			Wrapper
			killCap
		}{base, k}
	case k == nil && p != nil && pr == nil && l == nil:
		return struct {
			Wrapper
			pauseCap
		}{base, p}
	case k != nil && p != nil && pr == nil && l == nil:
		return struct {
			Wrapper
			killCap
			pauseCap
		}{base, k, p}
	case k == nil && p == nil && pr != nil && l == nil:
		return struct {
			Wrapper
			primaryCap
		}{base, pr}
	case k != nil && p == nil && pr != nil && l == nil:
		return struct {
			Wrapper
			killCap
			primaryCap
		}{base, k, pr}
	case k == nil && p != nil && pr != nil && l == nil:
		return struct {
			Wrapper
			pauseCap
			primaryCap
		}{base, p, pr}
	case k != nil && p != nil && pr != nil && l == nil:
		return struct {
			Wrapper
			killCap
			pauseCap
			primaryCap
		}{base, k, p, pr}
	case k == nil && p == nil && pr == nil && l != nil:
		return struct {
			Wrapper
			logCap
		}{base, l}
	case k != nil && p == nil && pr == nil && l != nil:
		return struct {
			Wrapper
			killCap
			logCap
		}{base, k, l}
	case k == nil && p != nil && pr == nil && l != nil:
		return struct {
			Wrapper
			pauseCap
			logCap
		}{base, p, l}
	case k != nil && p != nil && pr == nil && l != nil:
		return struct {
			Wrapper
			killCap
			pauseCap
			logCap
		}{base, k, p, l}
	case k == nil && p == nil && pr != nil && l != nil:
		return struct {
			Wrapper
			primaryCap
			logCap
		}{base, pr, l}
	case k != nil && p == nil && pr != nil && l != nil:
		return struct {
			Wrapper
			killCap
			primaryCap
			logCap
		}{base, k, pr, l}
	case k == nil && p != nil && pr != nil && l != nil:
		return struct {
			Wrapper
			pauseCap
			primaryCap
			logCap
		}{base, p, pr, l}
	default:
		return struct {
			Wrapper
			killCap
			pauseCap
			primaryCap
			logCap
		}{base, k, p, pr, l}
	}
}

// Embedded under these names, the capability interfaces promote their
// methods; embedded under their own names (Kill, Primary), the field name
// would shadow the method of the same name.
type (
	killCap    interface{ Kill }
	pauseCap   interface{ Pause }
	primaryCap interface{ Primary }
	logCap     interface{ LogFiles }
)
