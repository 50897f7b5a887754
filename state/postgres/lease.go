package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// Leases: a row per lease in the leases table, its expiry kept on the
// database's clock (clock_timestamp()), so replicas whose clocks disagree
// still agree on who holds it. Every acquisition increments the token; a
// renewal keeps it. The token is the fence that Apply checks (state.Fence),
// so a holder that lost its lease cannot write even if it does not know yet.

// TryAcquireLease takes lease name for holder for ttl if it is free (never
// held, or expired) and returns the new token; ok is false while another
// holder's lease runs.
func (s *Store) TryAcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (token uint64, ok bool, err error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return 0, false, err
	}
	defer leave()
	var t int64
	err = s.pool.QueryRow(ctx, `INSERT INTO leases (name, holder, token, expires_at)
		VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 microsecond')
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, token = leases.token + 1, expires_at = excluded.expires_at
		WHERE leases.expires_at <= clock_timestamp()
		RETURNING token`, name, holder, ttl.Microseconds()).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.wrap(err, "acquire lease %s", name)
	}
	return uint64(t), true, nil
}

// RenewLease extends holder's lease by ttl from now if it still holds it
// with token and it has not expired; ok is false when it was lost.
func (s *Store) RenewLease(ctx context.Context, name, holder string, token uint64, ttl time.Duration) (ok bool, err error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return false, err
	}
	defer leave()
	tag, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = clock_timestamp() + $4 * interval '1 microsecond'
		WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > clock_timestamp()`, name, holder, int64(token), ttl.Microseconds())
	if err != nil {
		return false, s.wrap(err, "renew lease %s", name)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease ends holder's lease now (a clean shutdown), so that another
// replica takes over without waiting for it to expire.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string, token uint64) error {
	leave, err := s.enter(ctx)
	if err != nil {
		return err
	}
	defer leave()
	_, err = s.pool.Exec(ctx, `UPDATE leases SET expires_at = clock_timestamp() WHERE name = $1 AND holder = $2 AND token = $3`,
		name, holder, int64(token))
	return s.wrap(err, "release lease %s", name)
}

// LeaseHolder returns who holds lease name and whether the lease runs.
func (s *Store) LeaseHolder(ctx context.Context, name string) (holder string, token uint64, live bool, err error) {
	leave, err := s.enter(ctx)
	if err != nil {
		return "", 0, false, err
	}
	defer leave()
	var t int64
	err = s.pool.QueryRow(ctx, "SELECT holder, token, expires_at > clock_timestamp() FROM leases WHERE name = $1", name).Scan(&holder, &t, &live)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", 0, false, nil
	}
	if err != nil {
		return "", 0, false, s.wrap(err, "read lease %s", name)
	}
	return holder, uint64(t), live, nil
}
