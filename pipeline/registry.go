package pipeline

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// FilterConfig is a filter's typed configuration, as a config file
// describes it. Its struct fields, with yaml tags and doc comments, are the
// filter's documentation.
type FilterConfig interface {
	// Validate reports every problem with the config, naming the fields
	// by their yaml names, so that bad config fails at load time.
	Validate() error
	// Build makes the filter. It runs once, when the chain is built.
	Build(env BuildEnv) (Filter, error)
}

// BuildEnv is what a filter may use while it is built.
type BuildEnv struct {
	// Logger is the server's logger.
	Logger *slog.Logger
}

// Module is a filter type that config files name. Modules register in
// init, and a user's binary adds its own the same way.
type Module struct {
	// Name is the filter's name in config files, e.g. "auth".
	Name string
	// New returns a new, empty config to decode into.
	New func() FilterConfig
}

var (
	registryMu sync.RWMutex
	registry   = map[string]Module{}
)

// Register adds a filter module. It panics if the name is empty or taken:
// both are programming errors found at start-up.
func Register(m Module) {
	if m.Name == "" || m.New == nil {
		panic("pipeline: Register needs a name and a New function")
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[m.Name]; dup {
		panic(fmt.Sprintf("pipeline: filter module %q registered twice", m.Name))
	}
	registry[m.Name] = m
}

// Lookup returns the module registered under name.
func Lookup(name string) (Module, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	m, ok := registry[name]
	return m, ok
}

// Modules returns the names of every registered module, sorted.
func Modules() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
