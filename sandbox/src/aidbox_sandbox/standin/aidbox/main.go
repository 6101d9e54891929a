// Command aidbox is a stand-in for the Aidbox server in tests on real nodes. It behaves like
// Aidbox on the outside as far as the operator and its tests care: /health in the RFC health
// format with about.version, /$version, the web port from BOX_WEB_PORT, Prometheus metrics on
// BOX_METRICS_PORT, a start-up delay standing for migrations, and a graceful SIGTERM. It also
// reports a fingerprint of the JWT keys it was given (never the keys) so tests can prove that
// every replica shares one key set.
//
// Settings of its own (environment): STANDIN_VERSION (else the build-time version),
// STANDIN_CHANNEL, STANDIN_STARTUP_SECONDS (nothing listens before it has passed),
// STANDIN_DRAIN_SECONDS (after SIGTERM it keeps accepting for this long, then stops accepting
// and finishes the requests in flight), STANDIN_DB_WAIT_SECONDS (how long it tries its
// database at start, default 10) and STANDIN_DATABASE=none (no database: see database.go).
// BOX_INIT_BUNDLE (file://) is read at start and its digest shown in /health's about, as is
// BOX_WEB_BASE_URL (the URL the server is told it is served at) as webBaseUrl.
//
// A release that fails at start, like an Aidbox whose migration failed: STANDIN_FAIL_START
// (else the build-time failStart, -ldflags "-X 'main.failStart=...'") set to a message makes
// it exit with status 1 once the start-up delay has passed, without ever listening. The
// message goes to stderr and to the termination message file, STANDIN_TERMINATION_LOG (default
// /dev/termination-log, the kubelet's default terminationMessagePath), so it shows in the
// pod's containerStatuses[].lastState.terminated.message. A binary built with failStart fails
// whatever its environment says: an image of it is a release that always fails.
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// version is the fallback for STANDIN_VERSION, set with -ldflags "-X main.version=...".
var version = "0000.0"

// failStart is the fallback for STANDIN_FAIL_START: empty starts normally.
var failStart = ""

// failAtStart writes the reason where the kubelet reads the termination message and exits 1.
func failAtStart(reason string) {
	path := envOr("STANDIN_TERMINATION_LOG", "/dev/termination-log")
	if err := os.WriteFile(path, []byte(reason), 0o644); err != nil {
		log.Printf("writing the termination message to %s: %v", path, err)
	}
	log.Printf("start-up failed: %s", reason)
	os.Exit(1)
}

type server struct {
	version     string
	channel     string
	fingerprint string
	keySource   string
	started     time.Time
	requests    atomic.Int64
	inFlight    atomic.Int64
	draining    atomic.Bool
	initBundle  map[string]any
	db          *database
	dbMu        sync.Mutex
	dbChecked   time.Time
	dbErr       error
}

// readInitBundle reads the file BOX_INIT_BUNDLE names (file:// only, as the operator mounts
// it), as Aidbox reads its init bundle at start; /health reports its digest so tests can see
// the pods read the ConfigMap's bytes. A bundle that cannot be read stops the start.
func readInitBundle(location string) (map[string]any, error) {
	if location == "" {
		return nil, nil
	}
	path, ok := strings.CutPrefix(location, "file://")
	if !ok {
		return nil, fmt.Errorf("init bundle %s: only file:// is supported by the stand-in", location)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("init bundle %s cannot be read: %v", location, err)
	}
	sum := sha256.Sum256(data)
	return map[string]any{"url": location, "sha256": hex.EncodeToString(sum[:]), "bytes": len(data)}, nil
}

// databaseCheck pings the database at most once a second however often /health is asked.
func (s *server) databaseCheck() error {
	if s.db == nil {
		return nil
	}
	s.dbMu.Lock()
	defer s.dbMu.Unlock()
	if time.Since(s.dbChecked) >= time.Second {
		s.dbErr = s.db.ping(2 * time.Second)
		s.dbChecked = time.Now()
	}
	return s.dbErr
}

// waitForDatabase tries until the wait is over, as Aidbox's pool does at start, then fails
// the start with the last error.
func waitForDatabase(db *database, wait time.Duration) {
	deadline := time.Now().Add(wait)
	for {
		err := db.ping(3 * time.Second)
		if err == nil {
			log.Printf("database %s:%s/%s answers", db.host, db.port, db.name)
			return
		}
		log.Printf("ERROR %v", err)
		if time.Now().After(deadline) {
			failAtStart(err.Error())
		}
		time.Sleep(time.Second)
	}
}

func seconds(name string, fallback float64) time.Duration {
	raw := os.Getenv(name)
	if raw == "" {
		return time.Duration(fallback * float64(time.Second))
	}
	value, err := strconv.ParseFloat(raw, 64)
	if err != nil || value < 0 {
		log.Fatalf("%s=%q is not a number of seconds", name, raw)
	}
	return time.Duration(value * float64(time.Second))
}

func envOr(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

// keyFingerprint hashes the three JWT settings together. Without any of them each process makes
// up its own (as Aidbox generates its own keypair), so replicas differ: what shared keys prevent.
func keyFingerprint() (string, string) {
	private := os.Getenv("BOX_SECURITY_AUTH_KEYS_PRIVATE")
	public := os.Getenv("BOX_SECURITY_AUTH_KEYS_PUBLIC")
	secret := os.Getenv("BOX_SECURITY_AUTH_KEYS_SECRET")
	if (private == "") != (public == "") {
		log.Fatal("only one of BOX_SECURITY_AUTH_KEYS_PRIVATE and _PUBLIC is set; refusing to start")
	}
	if private == "" && secret == "" {
		random := make([]byte, 32)
		if _, err := rand.Read(random); err != nil {
			log.Fatal(err)
		}
		sum := sha256.Sum256(random)
		return hex.EncodeToString(sum[:8]), "generated"
	}
	digest := sha256.New()
	for _, part := range []string{private, public, secret} {
		digest.Write([]byte(part))
		digest.Write([]byte{0})
	}
	return hex.EncodeToString(digest.Sum(nil)[:8]), "environment"
}

func writeJSON(w http.ResponseWriter, contentType string, body any) {
	w.Header().Set("Content-Type", contentType)
	if err := json.NewEncoder(w).Encode(body); err != nil {
		log.Printf("writing response: %v", err)
	}
}

func (s *server) health(w http.ResponseWriter, _ *http.Request) {
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	now := time.Now().UTC().Format(time.RFC3339)
	check := func(kind string, value any, unit string) []map[string]any {
		return []map[string]any{{
			"componentType": kind, "observedValue": value, "observedUnit": unit,
			"status": "pass", "time": now,
		}}
	}
	dbCheck := check("datastore", 0, "ms")
	status, dbStatus := "pass", "pass"
	if err := s.databaseCheck(); err != nil {
		status, dbStatus = "fail", "fail"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	dbCheck[0]["status"] = dbStatus
	writeJSON(w, "application/health+json", map[string]any{
		"status":      status,
		"version":     s.version,
		"description": "aidbox stand-in",
		"about": map[string]any{
			"version":             s.version,
			"channel":             s.channel,
			"authKeysFingerprint": s.fingerprint,
			"authKeysSource":      s.keySource,
			"initBundle":          s.initBundle,
			"webBaseUrl":          os.Getenv("BOX_WEB_BASE_URL"),
		},
		"checks": map[string]any{
			"uptime":             check("system", time.Since(s.started).Seconds(), "s"),
			"memory:utilization": check("system", mem.Sys, "bytes"),
			"db:responseTime":    dbCheck,
		},
	})
}

func (s *server) versionInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, "application/json", map[string]any{
		"version": s.version, "commit": "standin", "timestamp": s.started.UTC().Format(time.RFC3339),
	})
}

// anyPath answers every other path, optionally after ?delay_ms=N, naming the pod that served it.
func (s *server) anyPath(w http.ResponseWriter, r *http.Request) {
	if delay, err := strconv.Atoi(r.URL.Query().Get("delay_ms")); err == nil && delay > 0 {
		time.Sleep(time.Duration(delay) * time.Millisecond)
	}
	host, _ := os.Hostname()
	writeJSON(w, "application/json", map[string]any{"pod": host, "version": s.version})
}

func (s *server) metrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	draining := 0
	if s.draining.Load() {
		draining = 1
	}
	fmt.Fprintf(w, "# TYPE standin_requests_total counter\nstandin_requests_total %d\n", s.requests.Load())
	fmt.Fprintf(w, "# TYPE standin_in_flight gauge\nstandin_in_flight %d\n", s.inFlight.Load())
	fmt.Fprintf(w, "# TYPE standin_draining gauge\nstandin_draining %d\n", draining)
	fmt.Fprintf(w, "# TYPE standin_uptime_seconds gauge\nstandin_uptime_seconds %.3f\n",
		time.Since(s.started).Seconds())
}

func (s *server) count(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		next.ServeHTTP(w, r)
	})
}

func listen(port string) net.Listener {
	listener, err := net.Listen("tcp", ":"+port)
	if err != nil {
		log.Fatal(err)
	}
	return listener
}

func main() {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds | log.LUTC)
	s := &server{
		version: envOr("STANDIN_VERSION", version),
		channel: envOr("STANDIN_CHANNEL", "stable"),
		started: time.Now(),
	}
	s.fingerprint, s.keySource = keyFingerprint()
	startup := seconds("STANDIN_STARTUP_SECONDS", 0)
	drain := seconds("STANDIN_DRAIN_SECONDS", 5)
	terminate := make(chan os.Signal, 1)
	signal.Notify(terminate, syscall.SIGTERM, syscall.SIGINT)
	log.Printf("aidbox stand-in %s starting; migrations take %s", s.version, startup)
	select {
	case <-time.After(startup):
	case <-terminate:
		log.Print("terminated during start-up")
		return
	}
	if reason := envOr("STANDIN_FAIL_START", failStart); reason != "" {
		failAtStart(reason)
	}
	bundle, err := readInitBundle(os.Getenv("BOX_INIT_BUNDLE"))
	if err != nil {
		failAtStart(err.Error())
	}
	s.initBundle = bundle
	db, err := databaseFromEnv(os.Getenv)
	if err != nil {
		failAtStart(err.Error())
	}
	if db != nil {
		waitForDatabase(db, seconds("STANDIN_DB_WAIT_SECONDS", 10))
	}
	s.db = db

	web := http.NewServeMux()
	web.HandleFunc("/health", s.health)
	web.HandleFunc("/$version", s.versionInfo)
	web.HandleFunc("/", s.anyPath)
	webServer := &http.Server{Handler: s.count(web), ReadHeaderTimeout: 10 * time.Second}
	webPort := envOr("BOX_WEB_PORT", "8080")
	go func() {
		if err := webServer.Serve(listen(webPort)); err != http.ErrServerClosed {
			log.Fatal(err)
		}
	}()
	var metricsServer *http.Server
	if port := os.Getenv("BOX_METRICS_PORT"); port != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/metrics", s.metrics)
		metricsServer = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := metricsServer.Serve(listen(port)); err != http.ErrServerClosed {
				log.Fatal(err)
			}
		}()
	}
	log.Printf("ready on :%s (keys %s, %s)", webPort, s.fingerprint, s.keySource)

	<-terminate
	s.draining.Store(true)
	log.Printf("SIGTERM: still accepting for %s", drain)
	time.Sleep(drain)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := webServer.Shutdown(ctx); err != nil {
		log.Printf("shutdown: %v", err)
	}
	if metricsServer != nil {
		_ = metricsServer.Shutdown(ctx)
	}
	log.Printf("stopped after %d requests", s.requests.Load())
}
