package bmc

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/tinkops/tinkops/schema"
	"github.com/tinkops/tinkops/state"
)

// Poll reads the power state of every hardware with a BMC now and then
// every interval, so Status shows machines switched on or off behind the
// server's back. It does nothing when interval is 0 (the default: polling
// a large fleet is load on BMCs that an operator opts into). A poll writes
// no event unless a machine's power changed between two readings (then one,
// "power state changed: off -> on"). Poll returns when ctx ends.
func (c *Controller) Poll(ctx context.Context, interval time.Duration, list func(ctx context.Context) ([]*schema.Hardware, error)) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := c.PollOnce(ctx, list); err != nil && ctx.Err() == nil {
			c.log.Warn("bmc poll: list hardware", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// PollOnce does one round of Poll: it reads every listed machine that has
// a BMC, at most PollConcurrency at once, and returns when all are read.
// A machine busy with another BMC operation is skipped (that operation
// updates its status). Statuses of machines no longer listed are dropped.
// It fails only if list does.
func (c *Controller) PollOnce(ctx context.Context, list func(ctx context.Context) ([]*schema.Hardware, error)) error {
	hws, err := list(ctx)
	if err != nil {
		return err
	}
	listed := make(map[schema.Key]bool, len(hws))
	sem := make(chan struct{}, c.pollConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, hw := range hws {
		if hw == nil {
			continue
		}
		listed[hwKey(hw)] = true
		conn, err := c.connection(ctx, hw)
		if err != nil {
			c.setStatus(hwKey(hw), "", state.ErrorMessage(err))
			continue
		}
		if conn == nil {
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.pollOne(ctx, hw, conn)
		}()
	}
	wg.Wait()
	c.mu.Lock()
	for key := range c.status {
		if !listed[key] {
			delete(c.status, key)
		}
	}
	c.mu.Unlock()
	return nil
}

// pollOne reads one machine's power state, once: a poll that fails is
// tried again at the next interval, not retried now.
func (c *Controller) pollOne(ctx context.Context, hw *schema.Hardware, conn *schema.BMCConnection) {
	key := hwKey(hw)
	unlock, ok := c.tryLock(key)
	if !ok {
		return
	}
	defer unlock()
	before := c.Status(key.Namespace, key.Name)
	start := time.Now()
	p, _, aerr := c.attempt(ctx, conn, powerStep(PowerActionStatus).do)
	if aerr != nil {
		if ctx.Err() != nil {
			return // shutting down: not the BMC's fault
		}
		c.called(powerStep(PowerActionStatus), time.Since(start), false)
		c.setStatus(key, "", aerr.msg)
		if before.Error != aerr.msg {
			c.log.Warn("bmc poll failed", "hardware", hwName(hw), "namespace", key.Namespace, "bmc", conn.Host, "err", aerr.msg)
		}
		return
	}
	c.called(powerStep(PowerActionStatus), time.Since(start), true)
	prev := c.setStatus(key, p, "")
	if before.Error != "" {
		c.log.Info("bmc poll answers again", "hardware", hwName(hw), "namespace", key.Namespace, "power", string(p))
	}
	if prev.Known() && p.Known() && prev != p {
		msg := fmt.Sprintf("power state changed: %s -> %s", prev, p)
		c.event(ctx, hw, nil, state.ActorReconciler, msg)
		c.log.Info("bmc "+msg, "hardware", hwName(hw), "namespace", key.Namespace)
	}
}
