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
	v, ok := c.state[k]
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
	if c.state == nil {
		c.state = make(map[any]any, 4)
	}
	c.state[k] = v
	c.mu.Unlock()
}

// Delete removes the call's value for k.
func (k *Key[T]) Delete(c *Call) {
	c.mu.Lock()
	delete(c.state, k)
	c.mu.Unlock()
}
