package pipeline

// Key names one typed per-call value, Envoy's "filter state": verified JWT
// claims, the chosen cluster, upstream results. Create keys once, at package
// level; two keys are distinct even when their names are equal.
//
// Values are stored in the [Call] and are safe for concurrent use: a value
// set on the request side can be read on the response side and by any later
// filter. The value itself must be safe for whatever sharing its owner
// allows; storing an immutable value is simplest.
type Key[T any] struct {
	name string
}

// NewKey returns a new key. The name appears in debugging output only.
func NewKey[T any](name string) *Key[T] { return &Key[T]{name: name} }

// String returns the key's name.
func (k *Key[T]) String() string { return k.name }

// Get returns the call's value for k and whether it was set.
func (k *Key[T]) Get(c *Call) (T, bool) {
	c.mu.Lock()
	v, ok := c.stateValue(k)
	c.mu.Unlock()
	if !ok {
		var zero T
		return zero, false
	}
	return v.(T), true
}

// Set stores v as the call's value for k, replacing any earlier value.
func (k *Key[T]) Set(c *Call, v T) {
	c.mu.Lock()
	c.setState(k, v)
	c.mu.Unlock()
}

// Delete removes the call's value for k.
func (k *Key[T]) Delete(c *Call) {
	c.mu.Lock()
	c.deleteState(k)
	c.mu.Unlock()
}

// stateEntry is one [Key]'s value in a call.
type stateEntry struct {
	key, value any
}

// The state helpers run with c.mu held.

func (c *Call) stateValue(k any) (any, bool) {
	for _, e := range c.state {
		if e.key == k {
			return e.value, true
		}
	}
	return nil, false
}

func (c *Call) setState(k, v any) {
	for i := range c.state {
		if c.state[i].key == k {
			c.state[i].value = v
			return
		}
	}
	if c.state == nil {
		c.state = c.stateBuf[:0]
	}
	c.state = append(c.state, stateEntry{k, v})
}

func (c *Call) deleteState(k any) {
	for i := range c.state {
		if c.state[i].key == k {
			last := len(c.state) - 1
			c.state[i] = c.state[last]
			c.state[last] = stateEntry{} // drop the references
			c.state = c.state[:last]
			return
		}
	}
}
