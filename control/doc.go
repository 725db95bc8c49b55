// Package control runs commands on nodes: Jepsen's jepsen.control, with
// explicit sessions instead of dynamic bindings.
//
// A [Remote] opens a [Conn] to a node (SSH in control/ssh, this machine in
// control/local). A [Client] keeps one Conn per node, reconnects when it
// breaks, bounds how many commands share it at once (OpenSSH's
// MaxSessions is 10), and retries transport failures. A [Session] is a
// Client plus Jepsen's scoping (cd, sudo, env, timeout); sessions are
// immutable values, so scoping one returns a new one and concurrent use is
// safe.
//
// Differences from Jepsen, on purpose:
//   - Arguments are escaped strictly (single quotes unless a plain word);
//     shell syntax must be asked for with [Raw]. Jepsen's escape passes |,
//     ', ~, #, ! and = unquoted.
//   - Every command has a deadline (the context's, or the session's
//     default), and a command that overruns is ended on the node too:
//     it runs under coreutils timeout, which signals its whole process
//     group. Jepsen has no command timeouts.
//   - A command that ran and exited non-zero is a [*CommandError]; one that
//     could not run (dial, auth, host key, lost connection, deadline) is a
//     [*TransportError]. Only transport errors are retried, with jittered
//     backoff and a reconnect, as Jepsen does (5 more tries, 50-150 ms).
//   - No password, sudo password or key material appears in an error:
//     Jepsen's nonzero-exit error prints stdin, sudo password included.
//
// Remotes and connections may do more through small optional
// interfaces, each asked where it is needed: [UserReporter],
// [SelfCanceler] and [Addresser] on a Remote, [Runner] and
// [BrokenReporter] on a Conn (remote.go says why they stay apart).
// [Runner] is the warm path's one seam: the Session builds each command
// once, as a [Job] (its argv, the node's deadline, its input and output),
// and a Runner chooses how to run it; control/ssh gives the argv to its
// node agent, which keeps the deadline itself, or the shell line with
// timeout(1) ([Job.Line]) to a channel. Any other Conn gets the line.
//
// The package knows nothing about databases.
package control
