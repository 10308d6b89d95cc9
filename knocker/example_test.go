package knocker_test

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
)

// Example builds a knock, sends it and waits for the door. Here a loopback
// UDP socket stands in for the doorman and a loopback TCP listener for the
// port it opens.
func Example() {
	doorman, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer doorman.Close()
	door, _ := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer door.Close()

	o := knocker.Options{
		Host:      "127.0.0.1",
		Service:   fmt.Sprint(door.Addr().(*net.TCPAddr).Port),
		Group:     "alice",
		Secret:    protocol.Secret("s3cretKnock"),
		KnockPort: uint16(doorman.LocalAddr().(*net.UDPAddr).Port),
	}

	// Build alone shows the payload; a fixed tag is for vectors only.
	tag := uint32(1900216097)
	vec := o
	vec.Service, vec.Tag = "2222", &tag
	_, payload, _ := knocker.Build(vec)
	fmt.Printf("%s\n", payload)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := knocker.Send(ctx, o) // fresh random tag
	if err != nil {
		fmt.Println(err)
		return
	}
	buf := make([]byte, 100)
	n, _ := doorman.Read(buf)
	fmt.Println("doorman got the knock:", string(buf[:n]) == string(res.Payload))

	if _, err := knocker.WaitOpen(ctx, res.Dest.Addr(), res.Port, 50*time.Millisecond); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("door open")
	// Output:
	// 2222 alice 1900216097 6e5df0a5edc4d12ba369070be523e0d2
	// doorman got the knock: true
	// door open
}
