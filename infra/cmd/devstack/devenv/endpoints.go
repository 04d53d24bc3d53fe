package devenv

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The endpoints file: what a running dev stack started and where, for the tools that talk to it
// (the operator CLI, the load test) and for scripts. The dev stack writes it once everything is
// up and removes it when it stops cleanly; a file whose dev stack died (SIGKILL, a crash) stays
// and reads as stale.
const (
	// Dir is the dev stack's default state folder, relative to where it runs (the repository):
	// the endpoints file and, under logs/, the logs (LogDir).
	Dir = ".dev"
	// EndpointsFile is the name of the endpoints file in the state folder.
	EndpointsFile = "endpoints.json"
	// EndpointsVersion is the version of the document this code writes and reads. A change
	// that an older reader would misread (a renamed or re-meant field) takes a new version.
	EndpointsVersion = 1
)

// Errors of ReadEndpoints and FindEndpoints, for callers that branch on them (the CLI falls
// through to its other sources when there is no dev stack). The messages say what to do.
var (
	// ErrNoDevStack: there is no endpoints file.
	ErrNoDevStack = errors.New("no dev stack endpoints file")
	// ErrStale: the file's dev stack no longer runs.
	ErrStale = errors.New("stale dev stack endpoints file")
	// ErrVersion: the file has a version this code does not read.
	ErrVersion = errors.New("unknown dev stack endpoints file version")
)

// Endpoints is the endpoints file (`.dev/endpoints.json`): one JSON document, version 1.
// Paths are absolute. Everything in it is local and public: loopback URLs, the emulators'
// dummy credentials and the dev stand-in credentials of this package (a pepper or Meta
// credentials given to the dev stack through its environment are left out).
type Endpoints struct {
	Version   int       `json:"version"`
	PID       int       `json:"pid"` // the dev stack process
	StartedAt time.Time `json:"started_at"`
	// ConfigFile is the app config the dev stack loaded.
	ConfigFile string `json:"config_file"`

	// APIURL is the base URL of the API (POST /v1/events at its root, no stage prefix).
	APIURL string `json:"api_url"`
	// App and APIKey: the first app of the config and its dev API key ("" if it has none).
	App    string `json:"app"`
	APIKey string `json:"api_key,omitempty"`
	// MetaSandboxURL is the embedded Meta Graph sandbox; "" when META_GRAPH_URL sent the
	// forwarder elsewhere.
	MetaSandboxURL string `json:"meta_sandbox_url,omitempty"`
	// MetaCAPIVersion and MetaMarketingVersion are the Meta API versions the forwarder and the
	// audience sync call (`retarget doctor` checks their expiry).
	MetaCAPIVersion      string `json:"meta_capi_version,omitempty"`
	MetaMarketingVersion string `json:"meta_marketing_version,omitempty"`

	Region   string  `json:"region"`
	Kinesis  Service `json:"kinesis"`
	DynamoDB Service `json:"dynamodb"`
	// Stream and Table are the event stream in Kinesis and the state table in DynamoDB.
	Stream string `json:"stream"`
	Table  string `json:"table"`
	// FrontDoor is the API's front door (FrontDoorREST or FrontDoorHTTP); RateTable the
	// ingest function's rate count table (FrontDoorHTTP only).
	FrontDoor string `json:"front_door,omitempty"`
	RateTable string `json:"rate_table,omitempty"`
	// DeadLetters is the forwarder's dead letters file (JSON lines).
	DeadLetters string `json:"dead_letters"`

	Credentials Credentials `json:"credentials"`

	// LogDir is the log folder; Logs names each log file in it by what writes it (ingest,
	// forwarder, segments, metrics, kinesalite, dynalite, esm_failures).
	LogDir string            `json:"log_dir"`
	Logs   map[string]string `json:"logs"`
}

// Service is one emulator: its endpoint and process.
type Service struct {
	Endpoint string `json:"endpoint"`
	PID      int    `json:"pid"`
}

// Credentials are the dev stack's stand-in credentials, all public.
type Credentials struct {
	// AWSAccessKeyID and AWSSecretAccessKey sign requests to the emulators, which do not check
	// them.
	AWSAccessKeyID     string `json:"aws_access_key_id"`
	AWSSecretAccessKey string `json:"aws_secret_access_key"`
	// Pepper is the pseudonym pepper when it is the built-in one (Pepper); "" when
	// PSEUDONYM_PEPPER set another.
	Pepper string `json:"pepper,omitempty"`
	// MetaAccessToken and MetaAppSecret are what the embedded Meta sandbox accepts; "" with
	// META_GRAPH_URL.
	MetaAccessToken string `json:"meta_access_token,omitempty"`
	MetaAppSecret   string `json:"meta_app_secret,omitempty"`
	// AdminAccessKeyID and AdminSecretAccessKey sign the API's IAM routes (SigV4, service
	// execute-api, region APIRegion): the dev admin credentials the dev stack accepts, also
	// when DEV_ADMIN_* set them, since they open nothing but this dev stack.
	AdminAccessKeyID     string `json:"admin_access_key_id,omitempty"`
	AdminSecretAccessKey string `json:"admin_secret_access_key,omitempty"`
	// APIRegion is the region of those signatures.
	APIRegion string `json:"api_region,omitempty"`
}

// EndpointsPath is the endpoints file in the state folder dir.
func EndpointsPath(dir string) string { return filepath.Join(dir, EndpointsFile) }

// WriteEndpoints writes e to dir's endpoints file atomically (a temporary file in dir, then a
// rename), so a reader never sees half a document. It sets e.Version.
func WriteEndpoints(dir string, e *Endpoints) error {
	e.Version = EndpointsVersion
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	f, err := os.CreateTemp(dir, EndpointsFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("endpoints file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Chmod(0o644) // CreateTemp makes it 0600; other users' tools may read it
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), EndpointsPath(dir))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("endpoints file: %w", err)
	}
	return nil
}

// RemoveEndpoints removes dir's endpoints file if the process pid wrote it: a second dev stack
// sharing the folder may have replaced it, and its file must stay.
func RemoveEndpoints(dir string, pid int) error {
	path := EndpointsPath(dir)
	e, err := decodeEndpoints(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil && e.PID != pid {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove endpoints file: %w", err)
	}
	return nil
}

// ReadEndpoints reads dir's endpoints file and checks that its dev stack still runs. The
// errors wrap ErrNoDevStack, ErrStale or ErrVersion and say what to do.
func ReadEndpoints(dir string) (*Endpoints, error) {
	path := EndpointsPath(dir)
	e, err := decodeEndpoints(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w: %s does not exist: is make dev running?", ErrNoDevStack, path)
	case err != nil:
		return nil, fmt.Errorf("dev stack endpoints file %s: %w", path, err)
	case e.Version != EndpointsVersion:
		return nil, fmt.Errorf("%w: %s has version %d, this tool reads version %d: rebuild the tool, or restart make dev with this checkout",
			ErrVersion, path, e.Version, EndpointsVersion)
	case e.PID <= 0 || !processAlive(e.PID):
		return nil, fmt.Errorf("%w: %s was written by dev stack pid %d, which no longer runs: start make dev again",
			ErrStale, path, e.PID)
	}
	return e, nil
}

// decodeEndpoints reads the file without judging it. The version is read first, so a newer
// document whose fields changed type still reports its version rather than a decoding error.
func decodeEndpoints(path string) (*Endpoints, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("not a JSON document: %w", err)
	}
	if v.Version != EndpointsVersion {
		return &Endpoints{Version: v.Version}, nil
	}
	var e Endpoints
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("version %d document: %w", v.Version, err)
	}
	return &e, nil
}

// FindEndpoints looks for Dir/EndpointsFile in start and its parents up to the module root
// (the first folder holding go.mod; the filesystem root if none), as a tool run anywhere in
// the repository should find the dev stack that `make dev` started at its root. It reads the
// first file found with ReadEndpoints; with none, the error wraps ErrNoDevStack.
func FindEndpoints(start string) (*Endpoints, error) {
	dir, err := filepath.Abs(start)
	if err != nil {
		return nil, fmt.Errorf("find dev stack endpoints: %w", err)
	}
	for {
		stateDir := filepath.Join(dir, Dir)
		if _, err := os.Stat(EndpointsPath(stateDir)); err == nil {
			return ReadEndpoints(stateDir)
		}
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return nil, fmt.Errorf("%w: no %s in %s or above it up to the module root %s: is make dev running?",
				ErrNoDevStack, filepath.Join(Dir, EndpointsFile), start, dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return nil, fmt.Errorf("%w: no %s in %s or above it: is make dev running (in this repository)?",
				ErrNoDevStack, filepath.Join(Dir, EndpointsFile), start)
		}
		dir = parent
	}
}
