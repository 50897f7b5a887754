package schema

import (
	"context"
	"runtime"
	"sync"
)

func (l *Loader) workers() int {
	if l.Workers > 0 {
		return l.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// parallel runs fn(0..n-1) on the Loader's workers and waits for them all.
func (l *Loader) parallel(ctx context.Context, n int, fn func(i int)) error {
	return l.parallelN(ctx, l.workers(), n, fn)
}

// parallelN runs fn(0..n-1) on the given number of goroutines.
func (l *Loader) parallelN(ctx context.Context, workers, n int, fn func(i int)) error {
	workers = min(workers, n)
	var next int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				if i >= n {
					return
				}
				fn(i)
			}
		}()
	}
	wg.Wait()
	return ctx.Err()
}
