package replay

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// lockHolder returns the pid holding a flock on the file, from /proc/locks
// (lines like "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF", the
// device's major and minor in hex), or 0 if it cannot tell.
func lockHolder(id fileID) int {
	data, err := os.ReadFile("/proc/locks")
	if err != nil {
		return 0
	}
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(id.dev), unix.Minor(id.dev), id.ino)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 1; i+4 < len(f); i++ {
			if f[i] == "FLOCK" && f[i-1] != "->" && f[i+4] == want {
				pid, _ := strconv.Atoi(f[i+3])
				return pid
			}
		}
	}
	return 0
}

// command returns the command name of process pid, if known.
func command(pid int) string {
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
