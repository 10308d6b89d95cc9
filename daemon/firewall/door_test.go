package firewall

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestDoorString(t *testing.T) {
	d := Door{ID: 7, Iface: "veth0", Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"), Port: 22, State: DoorArmed}
	if got, want := d.String(), "door 7 tcp 198.18.0.2:any -> 198.18.0.1:22 on veth0 (armed)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	d.SrcPort, d.State, d.Iface = 4000, DoorNarrow, ""
	if got, want := d.String(), "door 7 tcp 198.18.0.2:4000 -> 198.18.0.1:22 (narrow)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := DoorState(9).String(); got != "DoorState(9)" {
		t.Errorf("unknown state: %q", got)
	}
}

func TestDoorValidate(t *testing.T) {
	v4s, v4d := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1")
	ok := Door{ID: 1, Src: v4s, Dst: v4d, Port: 22, State: DoorArmed, Expires: time.Now()}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid door refused: %v", err)
	}
	bad := []Door{
		{Src: v4s, Dst: v4d, Port: 22, State: DoorArmed}, // id 0
		{ID: 1, Src: v4s, Dst: v4d, State: DoorArmed},    // port 0
		{ID: 1, Src: netip.MustParseAddr("::ffff:198.18.0.2"), Dst: netip.MustParseAddr("2001:db8::1"), Port: 22, State: DoorArmed}, // mapped
		{ID: 1, Src: v4s, Dst: netip.MustParseAddr("2001:db8::1"), Port: 22, State: DoorArmed},                                      // mixed
		{ID: 1, Src: v4s, Dst: v4d, Port: 22, State: DoorClaimed},                                                                   // claimed without port
		{ID: 1, Src: v4s, Dst: v4d, Port: 22, State: DoorNarrow},                                                                    // narrow without port
		{ID: 1, Src: v4s, Dst: v4d, Port: 22, State: DoorState(9)},
		{ID: 1, Iface: "bad/name", Src: v4s, Dst: v4d, Port: 22, State: DoorArmed},
	}
	for _, d := range bad {
		if err := d.validate(); !errors.Is(err, ErrInvalidRule) {
			t.Errorf("%+v: got %v, want ErrInvalidRule", d, err)
		}
	}
}

// TestTransition pins the door lifecycle every backend enforces.
func TestTransition(t *testing.T) {
	allowed := map[[2]DoorState]bool{
		{DoorClosed, DoorClosed}: true, {DoorClosed, DoorArmed}: true,
		{DoorArmed, DoorArmed}: true, {DoorArmed, DoorClaimed}: true, {DoorArmed, DoorClosed}: true,
		{DoorClaimed, DoorClaimed}: true, {DoorClaimed, DoorNarrow}: true, {DoorClaimed, DoorArmed}: true, {DoorClaimed, DoorClosed}: true,
		{DoorNarrow, DoorNarrow}: true, {DoorNarrow, DoorClosed}: true,
	}
	for from := DoorClosed; from <= DoorNarrow; from++ {
		for to := DoorClosed; to <= DoorNarrow; to++ {
			if got := Transition(from, to); got != allowed[[2]DoorState{from, to}] {
				t.Errorf("Transition(%v, %v) = %v", from, to, got)
			}
		}
	}
}

func TestDoorErrorNamesBackendAndDoor(t *testing.T) {
	d := Door{ID: 3, Src: netip.MustParseAddr("198.18.0.2"), Dst: netip.MustParseAddr("198.18.0.1"), Port: 22, State: DoorArmed}
	err := doorErr("nftables", d, ErrTooManyDoors)
	if want := "nftables: door 3 tcp 198.18.0.2:any -> 198.18.0.1:22 (armed): too many open doors"; err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
	var de *DoorError
	if !errors.Is(err, ErrTooManyDoors) || !errors.As(err, &de) || de.Door != d {
		t.Error("errors.Is/As lost the cause or the door")
	}
	if doorErr("x", d, nil) != nil {
		t.Error("nil cause must give nil error")
	}
}
