//go:build linux

// Command exampled stands in for an outside implementation of the classic
// doorman in conformance/README.md's worked example. Everything an adapter
// sees differs from doormand: the command line, a JSON configuration with
// durations in Go syntax, JSON logs, SIGINT to stop and SIGUSR2 to reload,
// and an event stream (schema v1 of conformance/README.md) that reports
// readiness and reloads. Inside it is the doorman engine: what it shows is
// the adapter contract, not a second implementation.
//
//	exampled --config exampled.json [--events FILE]
//
// Its nftables table is "exampled"; like doormand's, it marks the packets
// of a door and relies on the admin's accept line for the mark.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/doorman-project/doorman/daemon"
	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/daemon/service"
)

// Config is exampled.json.
type Config struct {
	Listen struct {
		Interface string `json:"interface"`
		UDPPort   int    `json:"udp_port"`
	} `json:"listen"`
	Door struct {
		WaitFor   string `json:"waitfor"`   // Go duration: no SYN within it closes the door
		Handshake string `json:"handshake"` // Go duration: connection-delay-1
		Recheck   string `json:"recheck"`   // Go duration: connection-delay-2
	} `json:"door"`
	Replay struct {
		File     string `json:"file"`
		Capacity int    `json:"capacity"`
	} `json:"replay"`
	Guests []Guest `json:"guests"`
}

// Guest is one entry of Config.Guests.
type Guest struct {
	Name   string   `json:"name"`
	Secret string   `json:"secret"`
	Ports  []int    `json:"ports"`
	From   []string `json:"from"` // address/bits
}

func loadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, d := range []string{c.Door.WaitFor, c.Door.Handshake, c.Door.Recheck} {
		if _, err := time.ParseDuration(d); err != nil {
			return nil, fmt.Errorf("%s: door: %w", path, err)
		}
	}
	for _, g := range c.Guests {
		if len(g.Ports) == 0 || len(g.From) == 0 {
			return nil, fmt.Errorf("%s: guest %q needs ports and from", path, g.Name)
		}
		for _, f := range g.From {
			if _, err := netip.ParsePrefix(f); err != nil {
				return nil, fmt.Errorf("%s: guest %q: %w", path, g.Name, err)
			}
		}
	}
	return &c, nil
}

// doormandFiles writes c as the doormand.cf and guest list the engine's
// loader reads, into dir, and returns the doormand.cf path.
func doormandFiles(c *Config, dir string) (string, error) {
	secs := func(d string) float64 { v, _ := time.ParseDuration(d); return v.Seconds() }
	usec := func(d string) int64 { v, _ := time.ParseDuration(d); return v.Microseconds() }
	var gl strings.Builder
	for _, g := range c.Guests {
		ports := make([]string, len(g.Ports))
		for i, p := range g.Ports {
			ports[i] = fmt.Sprint(p)
		}
		fmt.Fprintf(&gl, "%s %s %s %s\n", g.Name, g.Secret, strings.Join(ports, " "), strings.Join(g.From, " "))
	}
	guests := filepath.Join(dir, "guests")
	if err := os.WriteFile(guests, []byte(gl.String()), 0o600); err != nil {
		return "", err
	}
	cf := fmt.Sprintf("interface %s\nport %d\nwaitfor %g\nconnection-delay-1 %d\nconnection-delay-2 %g\n"+
		"firewall nftables\nnft-table exampled\nguestlist %s\nhash-archive %s\nhash-archive-size %d\npidfile %s\nloglevel debug\n",
		c.Listen.Interface, c.Listen.UDPPort, secs(c.Door.WaitFor), usec(c.Door.Handshake), secs(c.Door.Recheck),
		guests, c.Replay.File, c.Replay.Capacity, filepath.Join(dir, "pid"))
	p := filepath.Join(dir, "doormand.cf")
	return p, os.WriteFile(p, []byte(cf), 0o600)
}

// events appends schema-v1 events, one JSON object per line.
type events struct {
	mu sync.Mutex
	f  *os.File
}

func openEvents(path string) (*events, error) {
	if path == "" {
		return &events{}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, err
	}
	return &events{f: f}, nil
}

func (e *events) emit(name string, fields map[string]any) {
	if e.f == nil {
		return
	}
	m := map[string]any{"time": time.Now().UTC().Format(time.RFC3339Nano), "event": name}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _ = e.f.Write(append(b, '\n'))
}

func main() {
	cfgPath := flag.String("config", "", "exampled.json")
	evPath := flag.String("events", "", "append the event stream (JSON lines) to this file")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := run(*cfgPath, *evPath, log); err != nil {
		log.Error("exampled failed", "err", err)
		os.Exit(1)
	}
}

// engineFiles loads the engine's view of c.
func engineFiles(c *Config, dir string) (*service.Service, *daemon.Guests, error) {
	cf, err := doormandFiles(c, dir)
	if err != nil {
		return nil, nil, err
	}
	return service.Load(service.Options{ConfigPath: cf, Debug: true})
}

func run(cfgPath, evPath string, log *slog.Logger) error {
	if cfgPath == "" {
		return errors.New("--config is required")
	}
	c, err := loadConfig(cfgPath)
	if err != nil {
		return err
	}
	ev, err := openEvents(evPath)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "exampled-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	svc, guests, err := engineFiles(c, dir)
	if err != nil {
		return err
	}
	defer svc.Close()
	cfg := svc.Config()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	fw, err := svc.Firewall()
	if err != nil {
		return err
	}
	src, err := capture.Open(ctx, capture.Config{Interface: cfg.Interface, KnockPort: cfg.Port, Logger: log})
	if err != nil {
		return err
	}
	store, err := replay.Open(cfg.HashArchive, replay.Options{Capacity: cfg.HashArchiveSize, Logger: log})
	if err != nil {
		return err
	}
	defer store.Close()
	settings := func(c *Config) daemon.Settings {
		d := func(s string) time.Duration { v, _ := time.ParseDuration(s); return v }
		return daemon.Settings{Interface: c.Listen.Interface, WaitFor: d(c.Door.WaitFor), Delay1: d(c.Door.Handshake),
			Delay2: d(c.Door.Recheck)}
	}
	conns, err := service.NewSockDiag()
	if err != nil {
		return err
	}
	defer conns.Close()
	eng := daemon.New(daemon.Options{Settings: settings(c), Guests: guests, Source: src, Firewall: fw,
		Replay: store, Conns: conns, Logger: log, Events: func(e daemon.Event) {
			if e.Kind == daemon.EventReady {
				log.Info("exampled ready")
				ev.emit("ready", map[string]any{"pid": os.Getpid(), "firewall": "nftables", "capture": "network"})
			}
		}})

	reload := make(chan os.Signal, 1)
	signal.Notify(reload, syscall.SIGUSR2)
	go func() {
		for range reload {
			nc, err := loadConfig(cfgPath)
			var g *daemon.Guests
			if err == nil {
				var s *service.Service
				if s, g, err = engineFiles(nc, dir); err == nil {
					s.Close()
				}
			}
			if err != nil {
				log.Error("reload failed; the previous configuration stays", "err", err)
				ev.emit("reload", map[string]any{"ok": false, "error": err.Error()})
				continue
			}
			eng.Reload(settings(nc), g)
			log.Info("reloaded")
			ev.emit("reload", map[string]any{"ok": true})
		}
	}()
	err = eng.Run(ctx)
	ev.emit("stopped", nil)
	return err
}
