package sandbox

import (
	_ "embed"
	"fmt"
	"strings"
)

// sshdConfig is each node's sshd configuration. MaxSessions and MaxStartups
// are raised well past OpenSSH's defaults (10 and 10:30:100), which are too
// low for parallel work on one connection.
func sshdConfig() string {
	return `# written by go-jepsen's sandbox
Port 22
ListenAddress 0.0.0.0
AddressFamily inet
HostKey /etc/ssh/jepsen_host_ed25519_key
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
StrictModes yes
MaxSessions 200
MaxStartups 200:30:400
MaxAuthTries 6
LogLevel INFO
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`
}

// hostsFile is each node's /etc/hosts: the control node and every node by
// name, so a database inside a node can address its peers by name.
func hostsFile(p Plan, n int) string {
	var b strings.Builder
	b.WriteString("# written by go-jepsen's sandbox\n127.0.0.1\tlocalhost\n")
	fmt.Fprintf(&b, "%s\tcontrol\n", p.HostAddr)
	for i := 1; i <= n; i++ {
		np := p.Node(i)
		fmt.Fprintf(&b, "%s\t%s\n", np.Addr, np.Name)
	}
	return b.String()
}

// sshClientConfig lets OpenSSH reach the nodes by name:
// `ssh -F <state>/ssh_config n1 hostname`.
func sshClientConfig(p Plan, n int) string {
	var b strings.Builder
	b.WriteString("# written by go-jepsen's sandbox\n")
	for i := 1; i <= n; i++ {
		np := p.Node(i)
		fmt.Fprintf(&b, "Host %s\n  HostName %s\n", np.Name, np.Addr)
	}
	fmt.Fprintf(&b, "Host *\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n  UserKnownHostsFile %s\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n",
		p.KeyFile(), p.KnownHosts())
	return b.String()
}

// initScript is PID 1 of every node (init.sh, run with the node's
// directory, hostname and the state directory as arguments).
//
//go:embed init.sh
var initScript string

// ipBatch configures the node's interfaces (run by `ip -batch` inside its
// network namespace).
func ipBatch(np NodePlan) string {
	return fmt.Sprintf("link set lo up\nlink set eth0 address %s\naddr replace %s/24 dev eth0\nlink set eth0 up\n", np.MAC, np.Addr)
}

// nodeFstab lists the node's mounts in order: the copy-on-write overlays,
// then the private directories, /tmp, and /run last, because /run holds
// the state directory (the bind sources) by default.
func nodeFstab(p Plan, np NodePlan) string {
	dir := p.NodeDir(np.Name)
	var b strings.Builder
	for _, d := range overlayDirs {
		k := dirKey(d)
		fmt.Fprintf(&b, "overlay %s overlay lowerdir=%s,upperdir=%s,workdir=%s 0 0\n", d, fstabEsc(d), fstabEsc(dir+"/upper/"+k), fstabEsc(dir+"/work/"+k))
	}
	for _, d := range append(append([]string{}, privateDirs...), "/tmp", "/run") {
		fmt.Fprintf(&b, "%s %s none bind 0 0\n", fstabEsc(dir+"/private/"+dirKey(d)), d)
	}
	return b.String()
}

// fstabEsc escapes what fstab's fields cannot hold (space, tab, newline,
// backslash) as octal, as fstab(5) says.
func fstabEsc(s string) string {
	r := strings.NewReplacer("\\", `\134`, " ", `\040`, "\t", `\011`, "\n", `\012`)
	return r.Replace(s)
}

// dirKey names the per-node data directory for a host path: /usr/local ->
// usr-local.
func dirKey(d string) string { return strings.ReplaceAll(strings.TrimPrefix(d, "/"), "/", "-") }
