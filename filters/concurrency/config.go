package concurrency

import (
	"errors"
	"fmt"
	"time"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Name is the filter's name in config files, logs and errors.
const Name = "concurrency_limit"

// DefaultQueueTimeout is how long a call waits for a slot when
// [Config.MaxPending] is set and [Config.QueueTimeout] is not.
const DefaultQueueTimeout = time.Second

func init() {
	pipeline.Register(pipeline.Module{Name: Name, New: func() pipeline.FilterConfig { return new(Config) }})
}

// Config is the concurrency limit's configuration. MaxConcurrent is
// required.
//
// In a config file:
//
//	filters:
//	  - concurrency_limit:
//	      max_concurrent: 100
//	      max_pending: 50
//	      queue_timeout: 250ms
type Config struct {
	// MaxConcurrent is the most calls in flight through the filter at
	// once. Required, at least 1.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxPending is the most calls that wait for a slot when all are
	// taken. Default 0: such calls are refused at once.
	MaxPending int `yaml:"max_pending"`
	// QueueTimeout is the longest a call waits for a slot, e.g. "250ms".
	// Only with max_pending; default 1s. A call's own deadline also ends
	// its wait.
	QueueTimeout time.Duration `yaml:"queue_timeout"`
}

// Validate reports every problem with c, naming the fields by their yaml
// names.
func (c Config) Validate() error {
	var errs []error
	if c.MaxConcurrent < 1 {
		errs = append(errs, fmt.Errorf("max_concurrent: must be at least 1, got %d", c.MaxConcurrent))
	}
	if c.MaxPending < 0 {
		errs = append(errs, fmt.Errorf("max_pending: must not be negative, got %d", c.MaxPending))
	}
	switch {
	case c.QueueTimeout < 0:
		errs = append(errs, fmt.Errorf("queue_timeout: must not be negative, got %v", c.QueueTimeout))
	case c.QueueTimeout > 0 && c.MaxPending == 0:
		errs = append(errs, errors.New("queue_timeout: needs max_pending, the number of calls that may wait"))
	}
	return errors.Join(errs...)
}

// Build makes the filter. It implements [pipeline.FilterConfig].
func (c Config) Build(pipeline.BuildEnv) (pipeline.Filter, error) {
	return New(c)
}

var (
	_ pipeline.FilterConfig = Config{}
	_ pipeline.FilterConfig = (*Config)(nil)
)
