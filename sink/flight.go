package sink

import "sync"

// flight is the batch being written in the background, as explicit state
// the reading loop can ask about: whether it is done, its result, and a
// function to run once it is done (the read-ahead's wake-up).
type flight struct {
	done chan struct{} // closed when the batch is committed or failed
	err  error         // set before done closes

	mu       sync.Mutex
	finished bool
	wake     func()
}

func newFlight() *flight { return &flight{done: make(chan struct{})} }

// finish records the result, ends the flight and runs its wake-up.
func (f *flight) finish(err error) {
	f.mu.Lock()
	f.err, f.finished = err, true
	wake := f.wake
	f.mu.Unlock()
	close(f.done)
	if wake != nil {
		wake()
	}
}

// over reports whether the flight has finished.
func (f *flight) over() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.finished
}

// onDone runs fn when the flight finishes, or now if it has.
func (f *flight) onDone(fn func()) {
	f.mu.Lock()
	if !f.finished {
		f.wake = fn
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	fn()
}

// result waits for the flight and returns its error.
func (f *flight) result() error {
	<-f.done
	return f.err
}
