// Command pgstart is the entry point of the sandbox's PostgreSQL image (Debian's postgresql
// package, packed by aidbox_sandbox/postgres.py): the image has no shell, so this does what a
// PostgreSQL image's entry script does. On an empty PGDATA it runs initdb with a superuser
// POSTGRES_USER / POSTGRES_PASSWORD (SCRAM-SHA-256 over TCP from anywhere), creates the
// database POSTGRES_DB in single-user mode, then replaces itself with the server.
package main

import (
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

const bin = "/usr/lib/postgresql/15/bin"

func run(stdin string, name string, args ...string) {
	cmd := exec.Command(filepath.Join(bin, name), args...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		log.Fatalf("%s: %v", name, err)
	}
}

func initialize(data, user, password, database string) {
	pwfile := filepath.Join(os.TempDir(), "pgstart-password")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	defer os.Remove(pwfile)
	run("", "initdb", "-D", data, "-U", user, "--pwfile", pwfile, "-E", "UTF8", "--locale", "C",
		"--auth-local", "trust", "--auth-host", "scram-sha-256")
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintln(hba, "host all all 0.0.0.0/0 scram-sha-256")
	hba.Close()
	if database != user && database != "postgres" {
		quoted := `"` + strings.ReplaceAll(database, `"`, `""`) + `"`
		run("CREATE DATABASE "+quoted+";\n", "postgres", "--single", "-D", data, "postgres")
	}
}

func main() {
	data := os.Getenv("PGDATA")
	user, password := os.Getenv("POSTGRES_USER"), os.Getenv("POSTGRES_PASSWORD")
	if data == "" || user == "" || password == "" {
		log.Fatal("PGDATA, POSTGRES_USER and POSTGRES_PASSWORD must be set")
	}
	database := os.Getenv("POSTGRES_DB")
	if database == "" {
		database = user
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		initialize(data, user, password, database)
	}
	server := filepath.Join(bin, "postgres") // argv[0] a full path: the server finds its files from it
	args := []string{server, "-D", data, "-c", "listen_addresses=*"}
	log.Fatal(syscall.Exec(server, args, os.Environ()))
}
