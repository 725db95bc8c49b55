//go:build !(linux && amd64)

package clock

// stopWorld is linux/amd64 only; supported() refuses earlier.
func stopWorld(pid int, windows [][2]uint64, fn func() error) error {
	return refuse("%s", supported())
}
