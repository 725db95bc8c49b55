package sandbox

import (
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

// shq single-quotes s for sh.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// initScript is what runs as PID 1 of node np, inside its network
// namespace and fresh mount, UTS, IPC and PID namespaces. It configures
// the node's network, builds its private filesystem view and execs sshd.
// Order matters (see the sandbox recipe): /run/netns is unmounted first so
// the node does not pin other nodes' namespaces; /run, which holds the
// state directory by default, is covered last (see nodeFstab). Every exec
// costs milliseconds and 50 nodes start at once, so the network is one
// `ip -batch` and the mounts one `mount -a`.
func initScript(p Plan, np NodePlan) string {
	dir := p.NodeDir(np.Name)
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("#!/bin/sh")
	w("# node %s of sandbox %s; written by go-jepsen", np.Name, p.Name)
	w("set -eu")
	w("D=%s", shq(dir))
	w("echo %s > /proc/sys/kernel/hostname", np.Name)
	w("mount --make-rprivate /")
	w("umount -R /run/netns 2>/dev/null || true")
	w("mount -t proc -o nosuid,nodev,noexec proc /proc")
	w("echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6")
	w("echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6")
	w("ip -batch \"$D/ip.batch\"")
	// /dev/shm is a tmpfs on the host already, which mount -a would take
	// as done.
	w("mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm")
	w("mount -a -T \"$D/fstab\"")
	// When the state dir is outside /run it is still visible here; hide
	// it so a node cannot read its neighbours' data.
	w("if [ -d %s ]; then mount -t tmpfs -o size=64k,mode=0755 tmpfs %s; fi", shq(p.StateDir), shq(p.StateDir))
	w("mount -o remount,bind,ro /")
	// No node may move the shared clock or load kernel modules.
	w("exec setpriv --bounding-set -sys_time,-sys_module -- /usr/sbin/sshd -D -e -f /etc/ssh/jepsen_sshd_config")
	return b.String()
}

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
