module github.com/go-jepsen/jepsen

go 1.26.0

require (
	github.com/gopacket/gopacket v1.7.7
	golang.org/x/crypto v0.59.0
	golang.org/x/sync v0.25.0
	golang.org/x/sys v0.50.0
)

require (
	github.com/anishathalye/porcupine v1.3.1 // indirect
	golang.org/x/net v0.62.0 // indirect
)
