package firewall

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// The script backend's journal is a text file of lines
//
//	add <id> <interface> <src-ip> <src-port> <dst-ip> <dst-port>
//	del <id>
//
// "add" is written (and synced) before the add script runs; "del" after the
// delete script succeeded. The rules of "add" lines without a matching "del"
// may still be in the firewall. Lines starting with '#' are comments. The
// fields after the id are the script's arguments.
const journalHeader = "# doorman firewall journal: \"add ID IFACE SRC SPORT DST DPORT\" is written before the add script runs, \"del ID\" after the delete script succeeded\n"

// journalEntry is one rule the journal says may be in the firewall.
type journalEntry struct {
	ID   uint64
	Rule Rule
}

func (e journalEntry) addLine() string {
	a := scriptArgs(e.Rule)
	return "add " + strconv.FormatUint(e.ID, 10) + " " + strings.Join(a[:], " ") + "\n"
}

func delLine(id uint64) string { return "del " + strconv.FormatUint(id, 10) + "\n" }

// scriptArgs are the 0.81 script arguments for r: interface ("any" when the
// rule names none), source address, source port (0 = any), destination
// address, destination port.
func scriptArgs(r Rule) [5]string {
	iface := r.Iface
	if iface == "" {
		iface = "any"
	}
	return [5]string{iface, r.src().String(), strconv.Itoa(int(r.SrcPort)), r.dst().String(), strconv.Itoa(int(r.DstPort))}
}

// maxJournalLine bounds one journal line; real lines are under 120 bytes.
const maxJournalLine = 4096

// parseJournal returns the journal's entries that have no "del" line, in the
// order they were added, and how many lines it could not use (a crash can
// leave a torn last line; a damaged journal must not stop the daemon from
// starting).
func parseJournal(rd io.Reader) (live []journalEntry, bad int, err error) {
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 256), maxJournalLine)
	var order []uint64
	byID := map[uint64]journalEntry{}
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := strings.Fields(string(line))
		switch {
		case len(f) == 7 && f[0] == "add":
			e, ok := parseAddLine(f)
			if !ok {
				bad++
				continue
			}
			if _, dup := byID[e.ID]; !dup {
				order = append(order, e.ID)
			}
			byID[e.ID] = e
		case len(f) == 2 && f[0] == "del":
			id, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				bad++
				continue
			}
			delete(byID, id)
		default:
			bad++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, bad, fmt.Errorf("read journal: %w", err)
	}
	for _, id := range order {
		if e, ok := byID[id]; ok {
			live = append(live, e)
			delete(byID, id) // an id re-added after its del appears once
		}
	}
	return live, bad, nil
}

func parseAddLine(f []string) (journalEntry, bool) {
	id, err1 := strconv.ParseUint(f[1], 10, 64)
	src, err2 := netip.ParseAddr(f[3])
	sport, err3 := strconv.ParseUint(f[4], 10, 16)
	dst, err4 := netip.ParseAddr(f[5])
	dport, err5 := strconv.ParseUint(f[6], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
		return journalEntry{}, false
	}
	r := Rule{Iface: f[2], Src: src, SrcPort: uint16(sport), Dst: dst, DstPort: uint16(dport)}
	if r.validate() != nil {
		return journalEntry{}, false
	}
	return journalEntry{ID: id, Rule: r}, true
}

// journal appends to the journal file. Not safe for concurrent use: the
// Script backend holds its lock around it.
type journal struct {
	f *os.File
}

// openJournal opens (creating) the journal at path, owner-only, never
// through a symbolic link (the daemon writes it as root).
func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	return &journal{f: f}, nil
}

func (j *journal) read() ([]journalEntry, int, error) {
	if _, err := j.f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return parseJournal(j.f)
}

// append writes one line and syncs it to disk: an "add" must be durable
// before the rule can exist.
func (j *journal) append(line string) error {
	if _, err := j.f.WriteString(line); err != nil {
		return fmt.Errorf("write journal: %w", err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	return nil
}

// reset empties the journal, leaving its header.
func (j *journal) reset() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("truncate journal: %w", err)
	}
	return j.append(journalHeader)
}

func (j *journal) close() error { return j.f.Close() }
